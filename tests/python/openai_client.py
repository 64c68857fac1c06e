"""Drives `agentc serve` with the real OpenAI Python client: chat, streaming, response_format
with a JSON Schema, a tool-call round trip (plain and streamed), logprobs, and a 400. Every
structured output is validated with `jsonschema`. Prints `ok: <check>` per check; any failure
raises (exit status 1).

Usage: openai_client.py BASE_URL MODEL
"""

import json
import sys

import jsonschema
import openai

BASE_URL, MODEL = sys.argv[1], sys.argv[2]
client = openai.OpenAI(base_url=BASE_URL, api_key="unused", max_retries=0, timeout=300)

WEATHER = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "unit": {"enum": ["celsius", "fahrenheit"]},
    },
    "required": ["city", "unit"],
    "additionalProperties": False,
}
TIME = {
    "type": "object",
    "properties": {"city": {"type": "string"}},
    "required": ["city"],
    "additionalProperties": False,
}
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "The current weather in a city",
            "parameters": WEATHER,
        },
    },
    {
        "type": "function",
        "function": {
            "name": "get_time",
            "description": "The local time in a city",
            "parameters": TIME,
        },
    },
]
SCHEMAS = {"get_weather": WEATHER, "get_time": TIME}


def ok(check):
    print(f"ok: {check}", flush=True)


def chat_and_stream():
    messages = [{"role": "user", "content": "Say hello in three words."}]
    reply = client.chat.completions.create(
        model=MODEL, messages=messages, temperature=0, max_tokens=16
    )
    text = reply.choices[0].message.content
    assert isinstance(text, str) and text, reply
    assert reply.choices[0].finish_reason in ("stop", "length"), reply
    assert reply.usage.completion_tokens > 0, reply
    ok("chat")

    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,
        temperature=0,
        max_tokens=16,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.content:
                pieces.append(choice.delta.content)
            finish = choice.finish_reason or finish
    assert "".join(pieces) == text, (pieces, text)
    assert finish == reply.choices[0].finish_reason, finish
    assert usage is not None and usage.completion_tokens == reply.usage.completion_tokens
    ok("chat streamed equals chat")


def response_format():
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string", "maxLength": 40},
            "age": {"type": "integer", "minimum": 0, "maximum": 120},
            "tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "maxItems": 3},
            "address": {
                "type": "object",
                "properties": {"city": {"type": "string", "maxLength": 40}},
                "required": ["city"],
            },
        },
        "required": ["name", "age", "tags", "address"],
        "additionalProperties": False,
    }
    for seed in range(3):
        reply = client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "Invent a person."}],
            temperature=0.8,
            seed=seed,
            max_tokens=200,
            response_format={
                "type": "json_schema",
                "json_schema": {"name": "person", "schema": schema, "strict": True},
            },
        )
        jsonschema.validate(json.loads(reply.choices[0].message.content), schema)
    ok("response_format json_schema (3 samples valid)")

    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Give a JSON object with a name and an age."}],
        temperature=0,
        max_tokens=100,
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(reply.choices[0].message.content), dict), reply
    ok("response_format json_object")


def check_calls(message):
    assert message.tool_calls, message
    for call in message.tool_calls:
        assert call.type == "function" and call.id.startswith("call_"), call
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])
    return message.tool_calls


def tool_round_trip():
    ask = {"role": "user", "content": "What is the weather in Paris?"}
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[ask],
        tools=TOOLS,
        tool_choice="required",
        temperature=0,
        max_tokens=100,
    )
    assert reply.choices[0].finish_reason == "tool_calls", reply
    calls = check_calls(reply.choices[0].message)
    ok("tool_choice required")

    stream = client.chat.completions.create(
        model=MODEL,
        messages=[ask],
        tools=TOOLS,
        tool_choice="required",
        temperature=0,
        max_tokens=100,
        stream=True,
    )
    streamed, finish = {}, None
    for chunk in stream:
        for choice in chunk.choices:
            for delta in choice.delta.tool_calls or []:
                entry = streamed.setdefault(delta.index, {"name": "", "arguments": ""})
                entry["name"] += delta.function.name or ""
                entry["arguments"] += delta.function.arguments or ""
            finish = choice.finish_reason or finish
    assert finish == "tool_calls", finish
    got = [(streamed[i]["name"], json.loads(streamed[i]["arguments"])) for i in sorted(streamed)]
    want = [(c.function.name, json.loads(c.function.arguments)) for c in calls]
    assert got == want, (got, want)
    ok("tool calls streamed equal tool calls")

    named = client.chat.completions.create(
        model=MODEL,
        messages=[ask],
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}},
        parallel_tool_calls=False,
        temperature=0,
        max_tokens=100,
    )
    named_calls = check_calls(named.choices[0].message)
    assert [c.function.name for c in named_calls] == ["get_time"], named_calls
    ok("named tool_choice")

    history = [
        ask,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [c.model_dump() for c in calls],
        },
    ] + [
        {"role": "tool", "tool_call_id": c.id, "content": json.dumps({"temp_c": 18})}
        for c in calls
    ]
    answer = client.chat.completions.create(
        model=MODEL,
        messages=history,
        tools=TOOLS,
        tool_choice="none",
        temperature=0,
        max_tokens=40,
    )
    assert isinstance(answer.choices[0].message.content, str), answer
    assert answer.choices[0].message.tool_calls is None, answer
    ok("tool result round trip")

    auto = client.chat.completions.create(
        model=MODEL, messages=history, tools=TOOLS, temperature=0, max_tokens=100
    )
    message = auto.choices[0].message
    if message.tool_calls:
        check_calls(message)
        assert auto.choices[0].finish_reason == "tool_calls", auto
    else:
        assert isinstance(message.content, str), auto
    ok("tool_choice auto")


def logprobs():
    reply = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Name a colour."}],
        temperature=0,
        max_tokens=8,
        logprobs=True,
        top_logprobs=2,
    )
    content = reply.choices[0].logprobs.content
    assert content, reply
    for entry in content:
        assert len(entry.top_logprobs) == 2, entry
        assert entry.top_logprobs[0].token == entry.token, entry
        assert entry.logprob <= 0.0, entry
    joined = b"".join(bytes(entry.bytes) for entry in content).decode()
    assert joined == reply.choices[0].message.content, (joined, reply)
    ok("chat logprobs")

    completion = client.completions.create(
        model=MODEL, prompt="1, 2, 3,", max_tokens=4, temperature=0, logprobs=2
    )
    lp = completion.choices[0].logprobs
    assert "".join(lp.tokens) == completion.choices[0].text, completion
    assert all(len(top) == 2 for top in lp.top_logprobs), lp
    ok("completion logprobs")


def bad_schema_is_a_400():
    try:
        client.chat.completions.create(
            model=MODEL,
            messages=[{"role": "user", "content": "x"}],
            response_format={
                "type": "json_schema",
                "json_schema": {
                    "name": "bad",
                    "schema": {"type": "object", "properties": {"a": {"type": "strnig"}}},
                },
            },
        )
    except openai.BadRequestError as error:
        body = error.body or {}
        assert body.get("param") == "response_format.json_schema.schema", body
        assert "/properties/a" in body.get("message", ""), body
        ok("bad schema is a 400 naming the pointer")
        return
    raise AssertionError("a bad schema was accepted")


chat_and_stream()
response_format()
tool_round_trip()
logprobs()
bad_schema_is_a_400()
print("all checks passed")
