"""The wire-translation bugs of issue 21, applied one at a time: does ``pytest suites`` alone catch each?

    python tools/listed_bugs.py [--only NAME,...] [--suites suites/test_wire_translation.py]

Each bug is one plausible slip in an adapter or in the ``Model`` pipeline, written as a literal
replacement in one file. For each, a copy of the tracked tree is made under a temporary directory,
the bug is put in, and ``pytest suites --backend=<its backend>`` (replay) judges the copy; the table
says whether the suites went red (caught) or stayed green (survived), and the first check that
failed. The unit tests in ``tests/`` are not run: the suites are the judge any implementation gets.
A bug that makes pytest error out (nothing judged it) is shown as ERROR, not caught.
Exit status: 0 when every bug is caught, 1 otherwise, 2 when a bug no longer applies (its text is
not in the file: the code moved, so the table would not measure what it says).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Bug:
    name: str
    backend: str
    path: str
    old: str
    new: str
    what: str


BUGS = [
    Bug("azure-api-version-dropped", "azure", "adapters/azure.py",
        "        return openai.AzureOpenAI(**options)",
        "        client = openai.AzureOpenAI(**options)\n"
        "        client._custom_query.pop('api-version', None)\n"
        "        return client",
        "Azure drops api-version from the URL"),
    Bug("usage-swapped-openai", "openai", "adapters/_openai_wire.py",
        'input_tokens=int(_get(usage, "prompt_tokens", 0) or 0),\n'
        '        output_tokens=int(_get(usage, "completion_tokens", 0) or 0),',
        'input_tokens=int(_get(usage, "completion_tokens", 0) or 0),\n'
        '        output_tokens=int(_get(usage, "prompt_tokens", 0) or 0),',
        "usage input/output swapped (OpenAI wire)"),
    Bug("usage-swapped-bedrock", "bedrock", "adapters/bedrock.py",
        'input_tokens=int(usage.get("inputTokens") or 0), output_tokens=int(usage.get("outputTokens") or 0)',
        'input_tokens=int(usage.get("outputTokens") or 0), output_tokens=int(usage.get("inputTokens") or 0)',
        "usage input/output swapped (Bedrock)"),
    Bug("temperature-not-forwarded", "openai", "adapters/_openai_wire.py",
        "    body.update(request.kwargs)",
        '    body.update({k: v for k, v in request.kwargs.items() if k != "temperature"})',
        "temperature not forwarded"),
    Bug("max-tokens-not-forwarded", "openai", "adapters/_openai_wire.py",
        "    body.update(request.kwargs)",
        '    body.update({k: v for k, v in request.kwargs.items() if k != "max_tokens"})',
        "max_tokens not forwarded"),
    Bug("call-kwargs-win", "openai", "harness/contract/model.py",
        "merged = {**kwargs, **self.kwargs}",
        "merged = {**self.kwargs, **kwargs}",
        "a call's kwargs win over the model's"),
    Bug("remove-parameter-ignored", "openai", "harness/contract/model.py",
        "merged = {**kwargs, **self.kwargs}",
        "merged = {**kwargs, **{k: v for k, v in self.kwargs.items() if not is_remove_parameter(v)}}",
        "REMOVE_PARAMETER ignored (the call's value is sent)"),
    Bug("stop-sent-to-every-family", "openai", "harness/contract/model.py",
        "    return not _NO_STOP.match(name)",
        "    return True",
        "stop sent to o3 / gpt-5 / grok"),
    Bug("router-ignores-deployments", "litellm-router", "adapters/litellm.py",
        " and all(supports_stop_parameter(m) for m in self._group_models(self.model_id))",
        "",
        "the Router's stop rule ignores the group's deployments"),
    Bug("bedrock-stop-always-sent", "bedrock", "adapters/bedrock.py",
        "    if request.stop_sequences and request.send_stop:",
        "    if request.stop_sequences:",
        "Bedrock sends stopSequences where stop must not be sent"),
    Bug("bedrock-stops-replace-config", "bedrock", "adapters/bedrock.py",
        '        inference["stopSequences"] = sent + [s for s in request.stop_sequences if s not in sent]',
        '        inference = {"stopSequences": sent + [s for s in request.stop_sequences if s not in sent]}',
        "Bedrock loses maxTokens/temperature when stops are given"),
    Bug("deltas-merged-in-arrival-order", "openai", "harness/contract/tool_calls.py",
        "for _, s in sorted(merged.items())]",
        "for _, s in merged.items()]",
        "streamed tool-call deltas merged in arrival order, not by index"),
    Bug("no-include-usage", "openai", "adapters/openai.py",
        'body = {**self._body(request), "stream": True, "stream_options": {"include_usage": True}}',
        'body = {**self._body(request), "stream": True}',
        "a stream request without stream_options.include_usage"),
    Bug("content-filter-reason-lost", "azure", "adapters/azure.py",
        "            message.finish_reason = \"content_filter\" + "
        "(f\": {', '.join(categories)}\" if categories else \"\")",
        "            message.finish_reason = None",
        "the Azure content-filter answer without its finish reason"),
]


def _copy_tree(dest: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            target = dest / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def _judge(tree: Path, backend: str, suites: list[str]) -> tuple[str, str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HF_HUB_OFFLINE": "1"}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "pytest", *suites, "-q", "-p", "no:cacheprovider",
                           f"--backend={backend}", "-x", "--no-header", "-rf"],
                          cwd=tree, env=env, capture_output=True, text=True)
    took = time.monotonic() - started
    failed = re.findall(r"^FAILED (\S+)", proc.stdout, re.M)
    if failed:
        return "caught", failed[0], took
    if proc.returncode == 0:
        return "SURVIVED", "", took
    # an error (the copy does not import, a fixture broke) is not a check that judged the bug
    errors = re.findall(r"^ERROR (\S+.*)$", proc.stdout, re.M)
    return "ERROR", (errors[0] if errors else (proc.stdout + proc.stderr).strip().splitlines()[-1])[:200], took


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default="",
                        help=f"comma list of bugs (default all: {', '.join(b.name for b in BUGS)})")
    parser.add_argument("--suites", default="suites", help="comma list of suite paths to run (default: suites)")
    args = parser.parse_args(argv)
    chosen = [b for b in BUGS if not args.only or b.name in args.only.split(",")]
    unknown = set(filter(None, args.only.split(","))) - {b.name for b in BUGS}
    if unknown:
        parser.error(f"{', '.join(sorted(unknown))}: not a bug. Valid bugs are: {', '.join(b.name for b in BUGS)}")
    suites = [s for s in args.suites.split(",") if s]
    missing = [b.name for b in chosen if (ROOT / b.path).read_text(encoding="utf-8").count(b.old) != 1]
    if missing:
        print(f"the text of {', '.join(missing)} is not (once) in its file: the bug no longer applies",
              file=sys.stderr)
        return 2
    survivors = 0
    with tempfile.TemporaryDirectory(prefix="listed-bugs-") as tmp:
        tree = Path(tmp)
        _copy_tree(tree)
        print(f"{'bug':32} {'backend':15} {'verdict':9} {'time':>6}  first failing check")
        for bug in chosen:
            path = tree / bug.path
            original = path.read_text(encoding="utf-8")
            path.write_text(original.replace(bug.old, bug.new), encoding="utf-8")
            try:
                verdict, first, took = _judge(tree, bug.backend, suites)
            finally:
                path.write_text(original, encoding="utf-8")
            survivors += verdict != "caught"
            print(f"{bug.name:32} {bug.backend:15} {verdict:9} {took:5.0f}s  {first}", flush=True)
    print(f"\n{len(chosen) - survivors} of {len(chosen)} caught by the suites alone")
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
