"""Budget forcing (s1, arXiv 2501.19393): control how long a reasoning model thinks, then make it answer.

Reproduces simplescaling/s1's vLLM implementation (README "vLLM with budget forcing" and the modified
lm-evaluation-harness `vllm_causallms.py`), with greedy decoding:

1. append the thinking start marker to the prompt and generate until a thinking stop token or the budget;
2. if the model stopped and extensions are left, drop the stop token, append the extension string ("Wait") and
   continue (at least one new token, as s1's `min_tokens=1`); extension tokens count toward the budget;
3. if it stopped on its own, append the end marker; if the budget ran out, append "\\n" (unless the thinking already
   ends with one), the end marker and "Final Answer:";
4. generate the answer until `<|im_end|>`.

The thinking segment (tokens between the start and end markers) never exceeds `max_thinking_tokens`, and every
result ends with an answer segment. Backends: vLLM when installed (batched), transformers `generate` otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# s1-format models (trained on `<|im_start|>think` / `<|im_start|>answer`) and Qwen3's native <think> block.
MARKERS: dict[str, dict[str, Any]] = {
    "s1": {
        "thinking_start": "<|im_start|>think",
        "thinking_end": "<|im_start|>answer",
        "final_answer": "\nFinal Answer:",
        "thinking_stop": ("<|im_start|>", "<|im_end|>"),
    },
    "qwen3": {
        "thinking_start": "<think>\n",
        "thinking_end": "</think>\n\n",
        "final_answer": "Final Answer:",
        "thinking_stop": ("</think>", "<|im_end|>"),
    },
}
ANSWER_STOP = ("<|im_end|>", "<|endoftext|>")


@dataclass
class BudgetConfig:
    """How long to think and how to force the answer."""

    max_thinking_tokens: int = 32000  # s1's README default for a 32k-context model
    num_ignore: int = 0  # how many times to suppress the end of thinking and append `ignore_str`
    ignore_str: str = "Wait"
    thinking_start: str = MARKERS["s1"]["thinking_start"]
    thinking_end: str = MARKERS["s1"]["thinking_end"]
    final_answer: str = MARKERS["s1"]["final_answer"]  # appended after thinking_end when the budget runs out
    thinking_stop: tuple[str, ...] = MARKERS["s1"]["thinking_stop"]
    max_answer_tokens: int = 4096

    @classmethod
    def for_markers(cls, markers: str, **kwargs: Any) -> BudgetConfig:
        """A config with the `s1` or `qwen3` marker set."""
        if markers not in MARKERS:
            raise ValueError(f"unknown markers {markers!r}; known: {', '.join(MARKERS)}")
        return cls(**{**MARKERS[markers], **kwargs})

    def validate(self) -> None:
        """Raise one error listing every invalid setting."""
        problems = []
        if self.max_thinking_tokens < 0:
            problems.append(f"max_thinking_tokens={self.max_thinking_tokens} must be >= 0")
        if self.num_ignore < 0:
            problems.append(f"num_ignore={self.num_ignore} must be >= 0")
        if self.num_ignore and not self.ignore_str:
            problems.append("ignore_str is empty but num_ignore > 0; use e.g. 'Wait'")
        if self.max_answer_tokens < 1:
            problems.append(f"max_answer_tokens={self.max_answer_tokens} must be >= 1")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class ForcedOutput:
    """One budget-forced generation."""

    prompt: str
    thinking_ids: list[int]
    answer_ids: list[int]
    text: str  # everything generated or forced after the prompt: start marker .. answer
    thinking: str
    answer: str  # the answer segment: forced "Final Answer:" (if any) + generated answer
    extensions: int  # how many times `ignore_str` was inserted
    budget_exhausted: bool  # True when the budget ran out and the answer was forced
    answer_finished: bool  # True when the answer ended with <|im_end|>, False when it hit max_answer_tokens
    segments: list[str] = field(default_factory=list)  # forced strings in order, for inspection

    @property
    def thinking_tokens(self) -> int:
        """Tokens in the thinking segment (extension strings included)."""
        return len(self.thinking_ids)


class Backend(Protocol):
    """Greedy continuation of token-id prompts."""

    def continue_ids(
        self, prompts: list[list[int]], max_new_tokens: int, stop_ids: Sequence[int], min_new_tokens: int = 0
    ) -> list[tuple[list[int], bool]]:
        """For each prompt: (new ids without the stop token, whether a stop token ended it)."""
        ...


class HFBackend:
    """transformers `generate`, one prompt at a time, greedy."""

    def __init__(self, model: Any, pad_token_id: int, logits_processor: Sequence[Any] = ()):
        self.model = model
        self.pad_token_id = pad_token_id
        self.logits_processor = list(logits_processor)

    def continue_ids(
        self, prompts: list[list[int]], max_new_tokens: int, stop_ids: Sequence[int], min_new_tokens: int = 0
    ) -> list[tuple[list[int], bool]]:
        """Greedy `generate` per prompt, stopping at any of `stop_ids`."""
        import torch
        from transformers import LogitsProcessorList

        device = next(self.model.parameters()).device
        results = []
        for ids in prompts:
            input_ids = torch.tensor([ids], device=device)
            out = self.model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                min_new_tokens=min_new_tokens,
                do_sample=False,
                eos_token_id=list(stop_ids),
                pad_token_id=self.pad_token_id,
                logits_processor=LogitsProcessorList(self.logits_processor),
            )
            new = out[0, len(ids) :].tolist()
            stopped = bool(new) and new[-1] in stop_ids
            results.append((new[:-1] if stopped else new, stopped))
        return results


class VLLMBackend:
    """vLLM `LLM.generate` on token ids, greedy, batched."""

    def __init__(self, llm: Any):
        self.llm = llm

    def continue_ids(
        self, prompts: list[list[int]], max_new_tokens: int, stop_ids: Sequence[int], min_new_tokens: int = 0
    ) -> list[tuple[list[int], bool]]:
        """One batched vLLM call; a stop token shows as finish_reason 'stop'."""
        from vllm import SamplingParams

        params = SamplingParams(
            temperature=0.0,
            max_tokens=max_new_tokens,
            min_tokens=min_new_tokens,
            stop_token_ids=list(stop_ids),
            skip_special_tokens=False,
        )
        outs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], sampling_params=params, use_tqdm=False)
        results = []
        for o in outs:
            new = list(o.outputs[0].token_ids)
            stopped = o.outputs[0].finish_reason == "stop"
            if stopped and new and new[-1] in stop_ids:
                new = new[:-1]  # vLLM keeps the stop token id in token_ids
            results.append((new, stopped))
        return results


def _encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=False) if text else []


def _single_token_ids(tokenizer: Any, texts: Sequence[str], what: str) -> list[int]:
    ids = []
    for t in texts:
        enc = _encode(tokenizer, t)
        if len(enc) != 1:
            raise ValueError(f"{what} {t!r} is {len(enc)} tokens for this tokenizer; stop markers must be one token")
        ids.append(enc[0])
    return ids


@dataclass
class _State:
    prompt_ids: list[int]
    thinking: list[int] = field(default_factory=list)
    extensions: int = 0
    done: bool = False
    exhausted: bool = False


def budget_force(backend: Backend, tokenizer: Any, prompts: Sequence[str], config: BudgetConfig) -> list[ForcedOutput]:
    """Budget-forced generation for rendered prompts (each ending with the assistant header)."""
    config.validate()
    start_ids = _encode(tokenizer, config.thinking_start)
    ext_ids = _encode(tokenizer, config.ignore_str)
    think_stop = _single_token_ids(tokenizer, config.thinking_stop, "thinking stop")
    answer_stop = _single_token_ids(tokenizer, ANSWER_STOP, "answer stop")
    budget = config.max_thinking_tokens
    states = [_State(_encode(tokenizer, p) + start_ids) for p in prompts]

    # Thinking: one round per allowed stop (the first plus num_ignore extensions), never past the budget.
    for round_ in range(config.num_ignore + 1):
        active = [s for s in states if not s.done]
        if not active:
            break
        for s in active:
            if len(s.thinking) >= budget:
                s.done = s.exhausted = True
        active = [s for s in active if not s.done]
        groups: dict[int, list[_State]] = {}
        for s in active:  # batch prompts that have the same room left
            groups.setdefault(budget - len(s.thinking), []).append(s)
        for room, group in groups.items():
            outs = backend.continue_ids(
                [s.prompt_ids + s.thinking for s in group], room, think_stop, min_new_tokens=1 if round_ else 0
            )
            for s, (new, stopped) in zip(group, outs, strict=True):
                s.thinking += new[: budget - len(s.thinking)]
                if not stopped:
                    s.done = s.exhausted = True
                elif round_ == config.num_ignore:
                    s.done = True  # the model ended its thinking and no extensions are left
                elif len(s.thinking) + len(ext_ids) > budget:
                    s.done = s.exhausted = True  # no room for another "Wait": the budget is spent
                else:
                    s.thinking += ext_ids
                    s.extensions += 1

    # Close the thinking segment and force the start of the answer.
    answer_prefixes = []
    for s in states:
        if s.exhausted:
            text = tokenizer.decode(s.thinking)
            sep = "" if (text.endswith("\n") or config.thinking_start.startswith("\n")) else "\n"
            answer_prefixes.append((sep + config.thinking_end, config.final_answer))
        else:
            answer_prefixes.append((config.thinking_end, ""))
    answer_prompts = [
        s.prompt_ids + s.thinking + _encode(tokenizer, end) + _encode(tokenizer, final)
        for s, (end, final) in zip(states, answer_prefixes, strict=True)
    ]
    answers = backend.continue_ids(answer_prompts, config.max_answer_tokens, answer_stop)

    results = []
    for p, s, (end, final), (ans_ids, finished) in zip(prompts, states, answer_prefixes, answers, strict=True):
        thinking = tokenizer.decode(s.thinking)
        answer = final + tokenizer.decode(ans_ids)
        results.append(
            ForcedOutput(
                prompt=p,
                thinking_ids=s.thinking,
                answer_ids=ans_ids,
                text=config.thinking_start + thinking + end + answer,
                thinking=thinking,
                answer=answer,
                extensions=s.extensions,
                budget_exhausted=s.exhausted,
                answer_finished=finished,
                segments=[
                    config.thinking_start,
                    *([config.ignore_str] * s.extensions),
                    end,
                    *([final] if final else []),
                ],
            )
        )
    return results


def make_backend(model: str | Any, tokenizer: Any, prefer: str = "auto", **vllm_kwargs: Any) -> Backend:
    """vLLM when installed (and `prefer` allows), else transformers; `model` is a path/id or a loaded HF model."""
    if prefer not in ("auto", "vllm", "hf"):
        raise ValueError(f"unknown backend {prefer!r}; known: auto, vllm, hf")
    if isinstance(model, str) and prefer in ("auto", "vllm"):
        try:
            from vllm import LLM
        except ImportError:
            if prefer == "vllm":
                raise RuntimeError("backend 'vllm' requested but vllm is not installed: pip install vllm") from None
        else:
            return VLLMBackend(LLM(model, **vllm_kwargs))
    if isinstance(model, str):
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(model, dtype="auto", device_map="auto")
    return HFBackend(model.eval(), pad_token_id=tokenizer.pad_token_id)


def render_prompt(tokenizer: Any, question: str, system: str | None = None) -> str:
    """The question as a chat prompt ending with the assistant header (the template adds its default system)."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
