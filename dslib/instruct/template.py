"""The DeepSeek-Coder-Instruct conversation format (DeepSeek-Coder §3.7) and its loss mask.

§3.7: instruction data "in the Alpaca Instruction format", each turn ended by ``<|EOT|>``. The exact text is the
released ``tokenizer_config.json`` ``chat_template`` of ``deepseek-ai/deepseek-coder-*-instruct``, quoted as
:data:`CHAT_TEMPLATE` from llama.cpp's ``tests/test-chat-template.cpp`` (ggerganov/llama.cpp, commit 037af53b,
labelled "deepseek-ai/deepseek-coder-33b-instruct"; the same string is vendored in other public repositories):

- the BOS token, then the default system prompt (:data:`DEFAULT_SYSTEM_PROMPT`: "Deepseek" in lower case and no
  final period, unlike the README) and a newline, unless the conversation has a system message, whose content
  replaces it verbatim and *without* a newline (the release's quirk, kept);
- a user turn ``### Instruction:\\n{content}\\n``; an assistant turn ``### Response:\\n{content}\\n<|EOT|>\\n``;
- the generation prompt ``### Response:\\n``.

The repository's fine-tuning script (``finetune/finetune_deepseekcoder.py``) writes instruction/output rows a
little differently (:data:`SCRIPT_SYSTEM_PROMPT`, ``DeepSeek`` with a final period, the instruction stripped, no
newline after ``<|EOT|>``); :func:`encode_example` reproduces either with ``style``.

Where we do better than the release: ``transformers`` tokenizes the rendered text, so a user who types
``<|EOT|>`` gets the end-of-turn id inside their message (and a training row holding it teaches the model to stop
there). :func:`encode_example` encodes every message's content literally (``dslib.tokenizer.encode_text``) and
inserts the special ids itself, and takes the loss mask from the spans it builds, never from searching the text
for ``### Response:``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tokenizers import Tokenizer

from dslib.tokenizer import BOS, EOT, encode_text, special_token_ids
from dslib.training.batches import IGNORE_INDEX

ROLES = ("system", "user", "assistant")
STYLES = ("chat", "finetune_script")

DEFAULT_SYSTEM_PROMPT = (
    "You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, and "
    "you only answer questions related to computer science. For politically sensitive questions, security and "
    "privacy issues, and other non-computer science questions, you will refuse to answer"
)
# finetune/finetune_deepseekcoder.py, build_instruction_prompt (deepseek-ai/DeepSeek-Coder).
SCRIPT_SYSTEM_PROMPT = (
    "You are an AI programming assistant, utilizing the DeepSeek Coder model, developed by DeepSeek Company, and "
    "you only answer questions related to computer science. For politically sensitive questions, security and "
    "privacy issues, and other non-computer science questions, you will refuse to answer."
)

# Verbatim from the released tokenizer_config.json (see the module docstring for the source).
CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}\n{% set add_generation_prompt = false %}\n{% endif %}\n"
    "{%- set ns = namespace(found=false) -%}\n{%- for message in messages -%}\n"
    "    {%- if message['role'] == 'system' -%}\n        {%- set ns.found = true -%}\n    {%- endif -%}\n"
    "{%- endfor -%}\n{{bos_token}}{%- if not ns.found -%}\n"
    "{{'You are an AI programming assistant, utilizing the Deepseek Coder model, developed by Deepseek Company, "
    "and you only answer questions related to computer science. For politically sensitive questions, security "
    "and privacy issues, and other non-computer science questions, you will refuse to answer\\n'}}\n"
    "{%- endif %}\n{%- for message in messages %}\n    {%- if message['role'] == 'system' %}\n"
    "{{ message['content'] }}\n    {%- else %}\n        {%- if message['role'] == 'user' %}\n"
    "{{'### Instruction:\\n' + message['content'] + '\\n'}}\n        {%- else %}\n"
    "{{'### Response:\\n' + message['content'] + '\\n<|EOT|>\\n'}}\n        {%- endif %}\n    {%- endif %}\n"
    "{%- endfor %}\n{% if add_generation_prompt %}\n{{'### Response:'}}\n{% endif %}"
)
GENERATION_PROMPT = "### Response:\n"


class InstructDataError(ValueError):
    """A conversation or instruction row that cannot be trained on; the message names the row."""


def _check_roles(messages: Sequence[Mapping]) -> None:
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping) or "role" not in message or "content" not in message:
            raise InstructDataError(f"message {i} must be a dict with 'role' and 'content', got {message!r:.80}")
        if message["role"] not in ROLES:
            raise InstructDataError(f"message {i} has role {message['role']!r}; choose one of: {', '.join(ROLES)}")
        if not isinstance(message["content"], str):
            raise InstructDataError(f"message {i} content is {type(message['content']).__name__}, not str")


def format_chat(messages: Sequence[Mapping], add_generation_prompt: bool = False) -> str:
    """The released chat template's text for ``messages`` (``[{"role", "content"}, …]``), BOS text included.

    Equal to ``transformers``' ``apply_chat_template(messages, tokenize=False)`` with :data:`CHAT_TEMPLATE`;
    like the template it renders any order of turns (:func:`encode_example` is the strict one).
    """
    _check_roles(messages)
    parts = [BOS]
    if not any(m["role"] == "system" for m in messages):
        parts.append(DEFAULT_SYSTEM_PROMPT + "\n")
    for m in messages:
        if m["role"] == "system":
            parts.append(m["content"])
        elif m["role"] == "user":
            parts.append(f"### Instruction:\n{m['content']}\n")
        else:
            parts.append(f"### Response:\n{m['content']}\n{EOT}\n")
    if add_generation_prompt:
        parts.append(GENERATION_PROMPT)
    return "".join(parts)


def as_messages(example: Mapping | Sequence[Mapping]) -> list[dict]:
    """A conversation from a ``{"messages": […]}`` row, an ``{"instruction", "output"}`` row or a message list."""
    if isinstance(example, Mapping):
        if "messages" in example:
            return list(example["messages"])
        if "instruction" in example or "output" in example:
            missing = [k for k in ("instruction", "output") if not isinstance(example.get(k), str)]
            if missing:
                raise InstructDataError(f"row has no text in {' and '.join(map(repr, missing))}")
            return [
                {"role": "user", "content": example["instruction"]},
                {"role": "assistant", "content": example["output"]},
            ]
        raise InstructDataError(f"row has neither 'messages' nor 'instruction'/'output' (fields: {sorted(example)})")
    return list(example)


def validate_conversation(messages: Sequence[Mapping], *, for_generation: bool = False) -> None:
    """Raise :class:`InstructDataError` unless ``messages`` is trainable: an optional system message first, then
    user and assistant turns alternating from a user turn, each assistant reply non-empty, ending with one
    (``for_generation``: ending with a user turn instead, earlier replies possibly empty)."""
    _check_roles(messages)
    turns = list(messages[1:] if messages and messages[0]["role"] == "system" else messages)
    if not turns:
        raise InstructDataError("conversation has no user or assistant turn")
    for i, message in enumerate(turns):
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise InstructDataError(
                f"conversation does not alternate: turn {i} is {message['role']!r}, expected {expected!r} "
                "(an optional system message first, then user, assistant, user, …)"
            )
        if expected == "assistant" and not for_generation and not message["content"].strip():
            raise InstructDataError(f"turn {i} is an empty response")
    last = turns[-1]["role"]
    if last != ("user" if for_generation else "assistant"):
        raise InstructDataError(f"conversation ends with a {last!r} turn; training needs an assistant reply last")


def _backend(tokenizer) -> Tokenizer:
    """A ``tokenizers.Tokenizer`` from itself or a ``transformers`` fast tokenizer."""
    return getattr(tokenizer, "backend_tokenizer", tokenizer)


def _spans(
    messages: list[dict], style: str, add_generation_prompt: bool, bos: int, eot: int
) -> list[tuple[str | int, bool]]:
    """The conversation as ``(text, or a special token's id, takes loss)`` spans in order."""
    if style == "finetune_script":
        # build_instruction_prompt + f"{output}\n{EOT_TOKEN}"; the whole prompt is masked, as there.
        user, reply = messages[-2]["content"], messages[-1]["content"]
        prompt = f"{SCRIPT_SYSTEM_PROMPT}\n### Instruction:\n{user.strip()}\n### Response:\n"
        return [(bos, False), (prompt, False), (reply + "\n", True), (eot, True)]
    spans: list[tuple[str | int, bool]] = [(bos, False)]
    if not any(m["role"] == "system" for m in messages):
        spans.append((DEFAULT_SYSTEM_PROMPT + "\n", False))
    for m in messages:
        if m["role"] == "system":
            spans.append((m["content"], False))
        elif m["role"] == "user":
            spans.append((f"### Instruction:\n{m['content']}\n", False))
        else:
            # The reply, its newline and <|EOT|> take the loss (as in finetune_deepseekcoder.py); the newline
            # after <|EOT|> is never generated (decoding stops at <|EOT|>), so it is masked like the prompt.
            spans += [(GENERATION_PROMPT, False), (m["content"] + "\n", True), (eot, True), ("\n", False)]
    if add_generation_prompt:
        spans.append((GENERATION_PROMPT, False))
    return spans


def encode_example(
    tokenizer, messages: Mapping | Sequence[Mapping], *, style: str = "chat", add_generation_prompt: bool = False
) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)`` of one conversation or ``{"instruction", "output"}`` row; labels are
    :data:`IGNORE_INDEX` (-100) on the prompt, the system text and the template, and equal the ids on every reply,
    its newline and its ``<|EOT|>`` (§3.7).

    ``style="chat"`` follows :data:`CHAT_TEMPLATE` (the ids equal ``apply_chat_template``'s whenever no message
    contains special-token text); ``"finetune_script"`` reproduces ``finetune_deepseekcoder.py`` for one-turn
    rows. Messages are encoded literally: ``<|EOT|>`` typed in a message stays text. ``add_generation_prompt``
    (with a conversation ending in a user turn) gives the prompt the chat sends to the model.
    """
    if style not in STYLES:
        raise ValueError(f"style={style!r} is not valid; choose one of: {', '.join(STYLES)}")
    conversation = as_messages(messages)
    validate_conversation(conversation, for_generation=add_generation_prompt)
    if style == "finetune_script" and (
        add_generation_prompt or [m["role"] for m in conversation] != ["user", "assistant"]
    ):
        raise InstructDataError("style='finetune_script' takes one instruction and its output")
    tok = _backend(tokenizer)
    special = special_token_ids(tok)
    # Adjacent text spans with the same mask are encoded together, so BPE sees the text exactly as it would in
    # the rendered template; every boundary left falls after a newline or at a special id, where no merge crosses.
    merged: list[tuple[str | int, bool]] = []
    for piece, loss in _spans(conversation, style, add_generation_prompt, special[BOS], special[EOT]):
        if isinstance(piece, str) and merged and isinstance(merged[-1][0], str) and merged[-1][1] == loss:
            merged[-1] = (merged[-1][0] + piece, loss)
        else:
            merged.append((piece, loss))
    encoded = iter(encode_text(tok, [p for p, _ in merged if isinstance(p, str)]))
    input_ids: list[int] = []
    labels: list[int] = []
    for piece, loss in merged:
        ids = [piece] if isinstance(piece, int) else next(encoded)
        input_ids += ids
        labels += ids if loss else [IGNORE_INDEX] * len(ids)
    return input_ids, labels


def plot_loss_mask(
    tokenizer, example: Mapping | Sequence[Mapping], ax=None, width: int = 110, title: str | None = None
):
    """Draw ``example``'s tokens as text, shaded by whether :func:`encode_example` puts a loss on them (the
    reply, its newline and ``<|EOT|>``) or not (BOS, system text, template, instruction); returns the axes."""
    import matplotlib.pyplot as plt  # plotting only: keep the module importable without a display stack
    from matplotlib.patches import Patch

    ids, labels = encode_example(tokenizer, example)
    tok = _backend(tokenizer)
    special = special_token_ids(tok)
    colors = {"no loss": "#e4e4e4", "loss: reply": "#9fd89f", "loss: <|EOT|>": "#f6b26b"}
    rows: list[list[tuple[int, str, str]]] = [[]]
    column = 0
    for token, label in zip(ids, labels, strict=True):
        kind = "no loss" if label == IGNORE_INDEX else "loss: <|EOT|>" if token == special[EOT] else "loss: reply"
        # The BOS text's full-width bars are missing from common monospace fonts.
        text = "<BOS>" if token == special[BOS] else tok.decode([token], skip_special_tokens=False)
        for j, part in enumerate(text.split("\n")):
            if j:  # a newline inside the token: show it, then start a row
                rows[-1].append((column, "↵", kind))
                rows.append([])
                column = 0
            part = part.replace("\t", "→")
            if column + len(part) > width:  # wrap long lines
                rows.append([])
                column = 0
            if part:
                rows[-1].append((column, part, kind))
                column += len(part) + 0.5  # room for the box's padding
    fontsize = 7.0
    right = max((x + len(text) for row in rows for x, text, _ in row), default=width)
    if ax is None:  # one data unit per character of the monospace font (0.6 em wide)
        fig, ax = plt.subplots(figsize=((right + 2) * 0.6 * fontsize / 72, 0.7 + 0.17 * len(rows)))
        fig.subplots_adjust(left=0, right=1)
    for y, row in enumerate(rows):
        for x, text, kind in row:
            ax.text(
                x,
                -y,
                text,
                family="monospace",
                fontsize=fontsize,
                va="center",
                ha="left",
                bbox={"facecolor": colors[kind], "edgecolor": "white", "pad": 0.15, "linewidth": 0.3},
            )
    ax.set_xlim(-1, right + 1)
    ax.set_ylim(-len(rows), 1)
    ax.axis("off")
    ax.legend(
        handles=[Patch(color=c, label=k) for k, c in colors.items()],
        loc="lower right",
        fontsize=7,
        ncol=3,
        bbox_to_anchor=(1, 1),
    )
    labelled = sum(label != IGNORE_INDEX for label in labels)
    ax.set_title(title or f"{len(ids)} tokens, {labelled} with a loss", fontsize=9, loc="left")
    return ax
