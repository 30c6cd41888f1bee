"""Request and response schemas of the OpenAI-compatible API, limits stated once in `Field`.

Static limits (ranges of temperature, top_p, n, the number of stop strings) live here; limits
that are server settings (longest prompt, largest max_tokens) are checked in `serve.routes`
against `Settings`. Unknown fields are ignored, as OpenAI's API does; known OpenAI features
this server does not implement are refused with 400 naming the parameter, never silently.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_STOP = 4
MAX_STOP_CHARS = 256
MAX_N = 16
MAX_MESSAGES = 1024
MAX_PROMPTS = 64

StopString = Annotated[str, Field(min_length=1, max_length=MAX_STOP_CHARS)]
StopList = Annotated[list[StopString], Field(max_length=MAX_STOP)]
PromptTexts = Annotated[list[str], Field(max_length=MAX_PROMPTS)]
PromptIdLists = Annotated[list[list[int]], Field(max_length=MAX_PROMPTS)]


class StreamOptions(BaseModel):
    include_usage: bool = Field(False, description="send a last chunk with token counts")


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")

    model: str = Field(min_length=1, max_length=256, description="the base model or an adapter")
    max_tokens: int | None = Field(None, ge=1, description="most tokens to generate per choice")
    temperature: float = Field(1.0, ge=0, le=2, description="0 picks the most likely token")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus sampling: probability mass kept")
    seed: int | None = Field(
        None, ge=0, lt=2**63, description="makes sampling reproducible for the same request"
    )
    stop: StopString | StopList | None = Field(
        None, description=f"up to {MAX_STOP} strings; generation ends before any of them"
    )
    n: int = Field(1, ge=1, le=MAX_N, description="choices to generate for the prompt")
    stream: bool = Field(False, description="send tokens as server-sent events")
    stream_options: StreamOptions | None = None
    user: str | None = Field(None, max_length=256)
    # Accepted by OpenAI; refused here unless neutral (see `unsupported`).
    logprobs: Any = None
    top_logprobs: Any = None
    presence_penalty: float = Field(0, ge=-2, le=2)
    frequency_penalty: float = Field(0, ge=-2, le=2)
    logit_bias: dict[str, float] | None = None
    best_of: int | None = None

    def stop_strings(self) -> tuple[str, ...]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return tuple(stops)

    def unsupported(self) -> list[str]:
        """Parameters set to something this server does not do."""
        refused = []
        if self.logprobs not in (None, False, 0):
            refused.append("logprobs")
        if self.top_logprobs not in (None, 0):
            refused.append("top_logprobs")
        if self.presence_penalty:
            refused.append("presence_penalty")
        if self.frequency_penalty:
            refused.append("frequency_penalty")
        if self.logit_bias:
            refused.append("logit_bias")
        if self.best_of not in (None, 1):
            refused.append("best_of")
        return refused


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class ChatCompletionRequest(Request):
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    max_completion_tokens: int | None = Field(
        None, ge=1, description="newer name of max_tokens; wins when both are set"
    )
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None

    def unsupported(self) -> list[str]:
        refused = super().unsupported()
        if self.tools:
            refused.append("tools")
        if self.response_format and self.response_format.get("type") not in (None, "text"):
            refused.append("response_format")
        return refused

    def requested_max_tokens(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(Request):
    prompt: str | PromptTexts | list[int] | PromptIdLists = Field(
        description=f"text, up to {MAX_PROMPTS} texts, or token ids (up to {MAX_PROMPTS} lists)"
    )
    max_tokens: int | None = Field(16, ge=1, description="most tokens to generate per choice")
    echo: bool = Field(False, description="put the prompt before each completion")
    suffix: str | None = None

    def unsupported(self) -> list[str]:
        refused = super().unsupported()
        if self.suffix:
            refused.append("suffix")
        return refused

    def prompts(self) -> list[str | list[int]]:
        """The prompts as texts or token-id lists (OpenAI accepts all four shapes)."""
        prompt = self.prompt
        if isinstance(prompt, str):
            return [prompt]
        if prompt and all(isinstance(p, int) for p in prompt):
            return [list(prompt)]
        return list(prompt)

    def requested_max_tokens(self) -> int | None:
        return self.max_tokens


# ---- responses ----


class PromptTokensDetails(BaseModel):
    cached_tokens: int = 0
    """Prompt tokens whose cache came from an earlier prompt (the prefix cache)."""


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    prompt_tokens_details: PromptTokensDetails = PromptTokensDetails()


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    index: int
    message: ResponseMessage
    finish_reason: Literal["stop", "length"] | None
    logprobs: None = None


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage


class Delta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: Delta
    finish_reason: Literal["stop", "length"] | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None


class CompletionChoice(BaseModel):
    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None
    logprobs: None = None


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage | None = None


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tuneloop"
    root: str
    """The model this one runs on (itself for a base model)."""
    parent: str | None
    """The base model of an adapter."""
    backend: str
    precision: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class LoadAdapterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, description="model id to serve it as")
    path: str = Field(
        min_length=1, max_length=1024, description="folder relative to the adapter directory"
    )
    model: str | None = Field(
        None, description="the torch model to load it on (default: the base model)"
    )


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def now() -> int:
    return int(time.time())
