"""Tools, images, reasoning and structured output through the official `openai` Python SDK.

The gateway runs in front of the mock Bedrock (``ai-gateway demo``; ``.ci/run`` sets
AI_GATEWAY_URL and AI_GATEWAY_MOCK_URL). The mock's replies are scripted by directives in the
last user turn, tool results included (see src/mock_bedrock.rs): ``mock:tool=NAME:JSON`` makes
the model call a tool, ``mock:text=WORD`` sets the answer, ``mock:reasoning=WORD`` adds signed
reasoning. The SDK's own helpers do the accumulating and parsing, so whatever they accept is
what real applications get.
"""

import json
import os
import urllib.request

import pydantic
import pytest
from openai import OpenAI
from openai.lib.streaming.chat import ChatCompletionStreamState

BASE_URL = os.environ.get("AI_GATEWAY_URL", "http://127.0.0.1:18080") + "/v1"
MOCK = os.environ.get("AI_GATEWAY_MOCK_URL", "http://127.0.0.1:18081")
MODEL = "claude-3-haiku"
THINKING_MODEL = "claude-sonnet-4"

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
    {"type": "function", "function": {"name": "get_time", "description": "Local time in a city"}},
]

# The model asks for both tools at once (parallel calls), after a short text.
ASK_BOTH = (
    "What is the weather and the time in Paris? "
    'mock:text=Checking. mock:tool=get_weather:{"city":"Paris"} mock:tool=get_time:{"city":"Paris"}'
)


@pytest.fixture(scope="module")
def client():
    return OpenAI(base_url=BASE_URL, api_key="sk-test", max_retries=0, timeout=30)


def last_converse_body():
    """The Converse body the mock Bedrock received last."""
    with urllib.request.urlopen(MOCK + "/__mock/last-request", timeout=5) as reply:
        return json.loads(reply.read())


def run_tools(calls):
    """What the application would run for each call: tool results keyed by call id."""
    results = {}
    for call in calls:
        args = json.loads(call.function.arguments)
        if call.function.name == "get_weather":
            results[call.id] = json.dumps({"city": args["city"], "temp_c": 21})
        else:
            # The mock reads directives from tool results, so the last one scripts the answer.
            results[call.id] = "14:05 mock:text=Sunny,_21C,_14:05_in_Paris."
    return results


def test_tool_loop_with_parallel_calls(client):
    messages = [{"role": "user", "content": ASK_BOTH}]
    first = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    choice = first.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Checking."
    calls = choice.message.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    assert calls[0].id != calls[1].id

    results = run_tools(calls)
    messages.append(choice.message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": cid, "content": out} for cid, out in results.items()]
    second = client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS)
    assert second.choices[0].finish_reason == "stop"
    assert second.choices[0].message.content == "Sunny, 21C, 14:05 in Paris."
    assert second.choices[0].message.tool_calls is None

    sent = last_converse_body()
    results_turn = sent["messages"][2]["content"]
    assert [b["toolResult"]["toolUseId"] for b in results_turn] == [c.id for c in calls]
    assert [b["toolUse"]["name"] for b in sent["messages"][1]["content"] if "toolUse" in b] == [
        "get_weather",
        "get_time",
    ]


def test_streamed_parallel_tool_calls_accumulate_in_the_sdk_helpers(client):
    messages = [{"role": "user", "content": ASK_BOTH}]
    stream_helper = client.chat.completions.stream
    with stream_helper(model=MODEL, messages=messages, tools=TOOLS) as stream:
        done = [e for e in stream if e.type == "tool_calls.function.arguments.done"]
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert final.choices[0].finish_reason == "tool_calls"
    assert message.content == "Checking."
    assert [c.function.name for c in message.tool_calls] == ["get_weather", "get_time"]
    assert [json.loads(c.function.arguments) for c in message.tool_calls] == [{"city": "Paris"}, {"city": "Paris"}]
    assert [e.name for e in done] == ["get_weather", "get_time"]

    # The same stream through ChatCompletionStreamState, then the loop closed with streaming.
    state = ChatCompletionStreamState()
    for chunk in client.chat.completions.create(model=MODEL, messages=messages, tools=TOOLS, stream=True):
        state.handle_chunk(chunk)
    calls = state.get_final_completion().choices[0].message.tool_calls
    assert [(c.id, c.function.name) for c in calls] == [(c.id, c.function.name) for c in message.tool_calls]

    messages.append(message.model_dump(exclude_none=True))
    messages += [{"role": "tool", "tool_call_id": cid, "content": out} for cid, out in run_tools(calls).items()]
    with stream_helper(model=MODEL, messages=messages, tools=TOOLS) as stream:
        answer = stream.get_final_completion()
    assert answer.choices[0].message.content == "Sunny, 21C, 14:05 in Paris."
    assert answer.choices[0].finish_reason == "stop"


def test_required_and_named_tool_choice(client):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "x mock:tool=get_time:{}"}],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert completion.choices[0].message.tool_calls[0].function.arguments == "{}"
    assert last_converse_body()["toolConfig"]["toolChoice"] == {"tool": {"name": "get_time"}}
    client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "x mock:tool=get_time:{}"}], tools=TOOLS, tool_choice="required"
    )
    assert last_converse_body()["toolConfig"]["toolChoice"] == {"any": {}}


def test_invalid_tool_arguments_are_a_bad_request_naming_them(client):
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=[
                {"role": "user", "content": "x"},
                {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "call_1", "type": "function", "function": {"name": "get_time", "arguments": "{not json"}}
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "r"},
            ],
            tools=TOOLS,
        )
    assert info.value.param == "messages[1].tool_calls[0].function.arguments"


def test_image_data_url_reaches_bedrock_as_an_image_block(client):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "What is this? mock:text=A_pixel."},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"}},
                ],
            }
        ],
    )
    assert completion.choices[0].message.content == "A pixel."
    assert last_converse_body()["messages"][0]["content"][1] == {
        "image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}
    }
    raw = client.chat.completions.with_raw_response.create(
        model=MODEL,
        messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}}]}],
    )
    assert raw.headers["x-ai-gateway-ignored-params"] == "image_url.detail"


def test_image_url_is_refused_when_the_gateway_does_not_fetch(client):
    import openai

    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}],
        )
    assert info.value.param == "messages[0].content[0].image_url.url"


REASON = "Think it through. mock:reasoning=First, mock:reasoning=the_weather. mock:text=Take_an_umbrella."


def test_reasoning_is_returned_and_sent_back(client):
    messages = [{"role": "user", "content": REASON}]
    completion = client.chat.completions.create(model=THINKING_MODEL, messages=messages, reasoning_effort="low")
    message = completion.choices[0].message
    assert message.content == "Take an umbrella."
    assert message.reasoning_content == "First, the weather."
    assert message.reasoning_signature
    thinking = last_converse_body()["additionalModelRequestFields"]["thinking"]
    assert thinking == {"type": "enabled", "budget_tokens": 2048}

    # Returning the assistant message as the SDK parsed it keeps the signed reasoning.
    messages += [message.model_dump(exclude_none=True), {"role": "user", "content": "And tomorrow?"}]
    client.chat.completions.create(model=THINKING_MODEL, messages=messages, reasoning_effort="low")
    block = last_converse_body()["messages"][1]["content"][0]
    assert block["reasoningContent"]["reasoningText"] == {
        "text": "First, the weather.",
        "signature": message.reasoning_signature,
    }


def test_streamed_reasoning_accumulates_beside_the_content(client):
    state = ChatCompletionStreamState()
    pieces = []
    stream = client.chat.completions.create(
        model=THINKING_MODEL, messages=[{"role": "user", "content": REASON}], reasoning_effort="low", stream=True
    )
    for chunk in stream:
        state.handle_chunk(chunk)
        if chunk.choices and getattr(chunk.choices[0].delta, "reasoning_content", None):
            pieces.append(chunk.choices[0].delta.reasoning_content)
    message = state.get_final_completion().choices[0].message
    assert "".join(pieces) == "First, the weather."
    assert message.content == "Take an umbrella."
    assert message.model_extra.get("reasoning_content") == "First, the weather."
    assert message.model_extra.get("reasoning_signature")


class Answer(pydantic.BaseModel):
    city: str
    temp_c: int


SCRIPTED_ANSWER = 'Weather as JSON. mock:tool=Answer:{"city":"Paris","temp_c":21}'


def test_structured_output_parses_into_the_pydantic_model(client):
    completion = client.chat.completions.parse(
        model=MODEL, messages=[{"role": "user", "content": SCRIPTED_ANSWER}], response_format=Answer
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "stop"
    assert choice.message.parsed == Answer(city="Paris", temp_c=21)
    assert not choice.message.tool_calls
    sent = last_converse_body()
    assert sent["toolConfig"]["toolChoice"] == {"tool": {"name": "Answer"}}
    assert sent["toolConfig"]["tools"][0]["toolSpec"]["inputSchema"]["json"]["properties"]["temp_c"] == {
        "title": "Temp C",
        "type": "integer",
    }


def test_structured_output_streams_through_the_sdk_helper(client):
    with client.chat.completions.stream(
        model=MODEL, messages=[{"role": "user", "content": SCRIPTED_ANSWER}], response_format=Answer
    ) as stream:
        deltas = [e.delta for e in stream if e.type == "content.delta"]
        final = stream.get_final_completion()
    assert len(deltas) >= 2, "the JSON arrives in pieces"
    assert final.choices[0].message.parsed == Answer(city="Paris", temp_c=21)
    assert final.choices[0].finish_reason == "stop"


def test_json_object_mode_returns_plain_json_content(client):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": 'x mock:tool=json_response:{"ok":true}'}],
        response_format={"type": "json_object"},
    )
    assert json.loads(completion.choices[0].message.content) == {"ok": True}
    assert completion.choices[0].finish_reason == "stop"


def test_bedrock_extension_passes_through_extra_body(client):
    completion = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "x mock:stop=guardrail_intervened mock:text=Blocked."}],
        user="user-42",
        extra_body={"bedrock": {"guardrailConfig": {"guardrailIdentifier": "gr1", "guardrailVersion": "1"}}},
    )
    assert completion.choices[0].finish_reason == "content_filter"
    sent = last_converse_body()
    assert sent["guardrailConfig"] == {"guardrailIdentifier": "gr1", "guardrailVersion": "1"}
    assert sent["requestMetadata"] == {"user": "user-42"}
