"""Placeholders the derived Azure and Bedrock cassettes carry, which replay settings use too.

Kept apart from ``harness.recording.derive`` so that registering a backend imports only these names.
"""

AZURE_RESOURCE_PLACEHOLDER = "example-resource"
AZURE_ENDPOINT = f"https://{AZURE_RESOURCE_PLACEHOLDER}.openai.azure.com"
AZURE_DEPLOYMENT = "example-deployment"
AZURE_API_VERSION = "2024-10-21"
AZURE_REGION = "East US"
BEDROCK_REGION = "us-east-1"
BEDROCK_MODEL_ID = "example.smollm2-135m-instruct-v1:0"
