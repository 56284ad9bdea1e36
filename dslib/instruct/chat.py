"""``python -m dslib.instruct.chat CHECKPOINT``: a terminal chat with an Instruct model (DeepSeek-Coder §3.7).

Each line read is a user turn. The whole conversation is re-encoded in the released chat template
(:func:`dslib.instruct.encode_example` with the generation prompt), the reply streams out token by token and
ends at ``<|EOT|>`` (or ``<｜end▁of▁sentence｜>``, which a Base model emits instead). When the conversation
outgrows the model's context, the oldest exchanges are dropped. ``/reset`` starts over, ``/exit`` or end of
input quits. Reading from a pipe works too: ``printf 'Write fizzbuzz\\n' | python -m dslib.instruct.chat DIR``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

import torch

from dslib.generate import generate
from dslib.instruct.template import encode_example
from dslib.model import Transformer, from_hf
from dslib.tokenizer import EOS, EOT, load_tokenizer, special_token_ids


class Chat:
    """A conversation with ``model``: :meth:`reply` adds a user turn and returns (and streams) the answer."""

    def __init__(
        self,
        model: Transformer,
        tokenizer,
        system: str | None = None,
        max_new_tokens: int = 512,
        temperature: float = 0.0,
        top_p: float = 0.95,
        seed: int = 0,
    ):
        self.model, self.tokenizer = model.eval(), tokenizer
        self.system, self.max_new_tokens, self.temperature, self.top_p = system, max_new_tokens, temperature, top_p
        self.generator = torch.Generator(device=next(model.parameters()).device).manual_seed(seed)
        ids = special_token_ids(tokenizer)
        self.stop = [ids[EOT], ids[EOS]]
        self.messages: list[dict] = []
        self.reset()

    def reset(self) -> None:
        self.messages = [{"role": "system", "content": self.system}] if self.system is not None else []

    def prompt_ids(self) -> list[int]:
        """The conversation so far plus the generation prompt, oldest exchanges dropped to leave room to answer."""
        budget = max(1, self.model.config.max_position_embeddings - self.max_new_tokens)
        first = 1 if self.system is not None else 0
        while True:
            ids, _ = encode_example(self.tokenizer, self.messages, add_generation_prompt=True)
            if len(ids) <= budget or len(self.messages) - first <= 1:
                return ids[-budget:] if len(ids) > budget else ids
            del self.messages[first : first + 2]

    def reply(self, text: str, stream: Callable[[str], None] | None = None) -> str:
        self.messages.append({"role": "user", "content": text})
        prompt = self.prompt_ids()
        new: list[int] = []
        shown = 0

        def on_token(_row: int, token: int) -> None:
            nonlocal shown
            new.append(token)
            decoded = self.tokenizer.decode(new)
            if stream is not None and not decoded.endswith("\ufffd"):  # wait for a character's last byte
                stream(decoded[shown:])
                shown = len(decoded)

        (tokens,) = generate(
            self.model,
            [prompt],
            self.max_new_tokens,
            self.temperature,
            self.top_p,
            stop=self.stop,
            generator=self.generator,
            on_token=on_token,
        )
        answer = self.tokenizer.decode(tokens)
        if stream is not None and len(answer) > shown:
            stream(answer[shown:])
        self.messages.append({"role": "assistant", "content": answer})
        return answer


def run(chat: Chat, lines: Iterable[str], out: TextIO, prompt: str = "") -> int:
    """Answer each line of ``lines`` on ``out`` (streamed); returns the number of replies."""
    replies = 0
    out.write(prompt)
    out.flush()
    for line in lines:
        text = line.rstrip("\n")
        if text.strip() == "/exit":
            break
        if text.strip() == "/reset":
            chat.reset()
        elif text.strip():
            chat.reply(text, stream=lambda piece: (out.write(piece), out.flush()))
            out.write("\n")
            replies += 1
        out.write(prompt)
        out.flush()
    return replies


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dslib.instruct.chat", description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, help="an exported model folder (config.json, tokenizer.json)")
    parser.add_argument("--system", default=None, help="system message (default: the release's system prompt)")
    parser.add_argument("--max-new-tokens", type=int, default=512)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    parser.add_argument("--top-p", type=float, default=0.95)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.checkpoint / "config.json").exists() or not (args.checkpoint / "tokenizer.json").exists():
        print(f"error: {args.checkpoint} needs config.json and tokenizer.json (an exported model)", file=sys.stderr)
        return 2
    model = from_hf(args.checkpoint, device="cuda" if torch.cuda.is_available() else "cpu")
    chat = Chat(model, load_tokenizer(args.checkpoint), args.system, args.max_new_tokens, args.temperature, args.top_p)
    run(chat, sys.stdin, sys.stdout, ">>> " if sys.stdin.isatty() else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
