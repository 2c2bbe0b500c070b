"""The official `openai` Python SDK against the gateway in front of the mock Bedrock.

The gateway URL comes from AI_GATEWAY_URL (``.ci/run`` starts ``ai-gateway demo`` and sets it).
Each test drives the mock with directives in the user message (see src/mock_bedrock.rs).
"""

import os

import openai
import pytest
from openai import OpenAI

BASE_URL = os.environ.get("AI_GATEWAY_URL", "http://127.0.0.1:18080") + "/v1"
MODEL = "claude-3-haiku"


@pytest.fixture(scope="module")
def client():
    # max_retries=0: error tests must see the first answer, not the SDK's retries.
    return OpenAI(base_url=BASE_URL, api_key="sk-test", max_retries=0, timeout=30)


def user(text):
    return [{"role": "user", "content": text}]


def test_non_stream_returns_a_typed_completion(client):
    completion = client.chat.completions.create(model=MODEL, messages=user("Hello"))
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert completion.id.startswith("chatcmpl-")
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == "Hello from the mock Bedrock runtime."
    assert choice.finish_reason == "stop"
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens


def test_non_stream_usage_counts_cached_tokens(client):
    completion = client.chat.completions.create(model=MODEL, messages=user("hi mock:usage=12,40,100,8"))
    assert completion.usage.prompt_tokens == 120
    assert completion.usage.completion_tokens == 40
    assert completion.usage.prompt_tokens_details.cached_tokens == 100


def test_stream_accumulates_to_the_full_text(client):
    stream = client.chat.completions.create(model=MODEL, messages=user("Hello"), stream=True)
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Hello from the mock Bedrock runtime."
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert all(c.usage is None for c in chunks)


def test_stream_helper_assembles_the_final_message(client):
    with client.beta.chat.completions.stream(model=MODEL, messages=user("x mock:text=one mock:text=two")) as stream:
        final = stream.get_final_completion()
    assert final.choices[0].message.content == "one two"
    assert final.choices[0].finish_reason == "stop"


def test_stream_include_usage_gives_a_final_usage_chunk(client):
    stream = client.chat.completions.create(
        model=MODEL,
        messages=user("Hi mock:usage=7,9,3,0"),
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    last = chunks[-1]
    assert last.choices == []
    assert last.usage.prompt_tokens == 10
    assert last.usage.completion_tokens == 9
    assert last.usage.total_tokens == 19
    assert last.usage.prompt_tokens_details.cached_tokens == 3


def test_upstream_throttling_raises_rate_limit_error(client):
    with pytest.raises(openai.RateLimitError) as info:
        client.chat.completions.create(model=MODEL, messages=user("x mock:status=throttle"))
    assert info.value.status_code == 429
    assert info.value.body["type"] == "rate_limit_error"


def test_stream_that_fails_before_the_first_event_raises_with_its_status(client):
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model=MODEL, messages=user("x mock:first_exception=throttlingException"), stream=True
        )


def test_mid_stream_error_is_raised_by_the_sdk(client):
    stream = client.chat.completions.create(
        model=MODEL, messages=user("x mock:mid_exception=modelStreamErrorException"), stream=True
    )
    received = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            received.append(chunk)
    assert received, "chunks before the failure are delivered"
    assert info.value.body["code"] == "upstream_stream_error"


def test_unknown_model_raises_not_found(client):
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="gpt-4o", messages=user("x"))
    assert info.value.code == "model_not_found"


def test_unsupported_parameter_raises_bad_request_naming_it(client):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(model=MODEL, messages=user("x"), n=2)
    assert info.value.param == "n"


def test_models_list(client):
    ids = [m.id for m in client.models.list()]
    assert MODEL in ids and "nova-lite" in ids
    assert client.models.retrieve(MODEL).owned_by == "anthropic"
