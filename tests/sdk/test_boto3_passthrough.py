"""boto3's bedrock-runtime client with the gateway as its endpoint_url: the native Converse
and ConverseStream APIs relayed to (mock) Bedrock, re-signed with the gateway's credentials."""

import os

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

GATEWAY = os.environ.get("AI_GATEWAY_URL", "http://127.0.0.1:18080")
MESSAGES = [{"role": "user", "content": [{"text": "Hello"}]}]


def client(prefix=""):
    # The client's own credentials never reach Bedrock; the gateway signs with its own.
    return boto3.client(
        "bedrock-runtime",
        endpoint_url=GATEWAY + prefix,
        region_name="us-east-1",
        aws_access_key_id="AKIDCLIENTONLY",
        aws_secret_access_key="client-secret",
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
    )


@pytest.mark.parametrize("prefix", ["", "/bedrock", "/providers/bedrock"])
def test_converse(prefix):
    reply = client(prefix).converse(modelId="claude-3-haiku", messages=MESSAGES)
    assert reply["output"]["message"]["content"][0]["text"] == "Hello from the mock Bedrock runtime."
    assert reply["stopReason"] == "end_turn"
    assert reply["usage"]["outputTokens"] > 0


def test_converse_by_bedrock_model_id():
    reply = client().converse(modelId="anthropic.claude-3-haiku-20240307-v1:0", messages=MESSAGES)
    assert reply["stopReason"] == "end_turn"


def test_converse_stream_events_are_parsed_by_boto3():
    reply = client().converse_stream(
        modelId="claude-3-haiku",
        messages=[{"role": "user", "content": [{"text": "x mock:frames=4 mock:usage=3,4"}]}],
    )
    events = list(reply["stream"])
    assert "messageStart" in events[0]
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text == "tok0 tok1 tok2 tok3 "
    assert events[-1]["metadata"]["usage"]["outputTokens"] == 4


def test_bedrock_errors_reach_boto3_with_their_code():
    with pytest.raises(ClientError) as info:
        client().converse(
            modelId="claude-3-haiku", messages=[{"role": "user", "content": [{"text": "x mock:status=validation"}]}]
        )
    assert info.value.response["Error"]["Code"] == "ValidationException"


def test_unknown_model_is_resource_not_found():
    with pytest.raises(ClientError) as info:
        client().converse(modelId="no-such-model", messages=MESSAGES)
    assert info.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_invoke_model_is_relayed():
    import json

    reply = client().invoke_model(
        modelId="titan-embed-text-v2",
        body=json.dumps({"inputText": "hello there", "dimensions": 256}),
        contentType="application/json",
        accept="application/json",
    )
    body = json.loads(reply["body"].read())
    assert len(body["embedding"]) == 256
    assert body["inputTextTokenCount"] == 2
