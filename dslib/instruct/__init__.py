"""Instruction tuning and chat (DeepSeek-Coder §3.7): the released chat template, supervised fine-tuning with the
loss on responses only (``python -m dslib.instruct``), and a terminal chat (``python -m dslib.instruct.chat``)."""

from dslib.instruct.finetune import finetune, response_loss
from dslib.instruct.template import CHAT_TEMPLATE, DEFAULT_SYSTEM_PROMPT, encode_example, format_chat

__all__ = ["CHAT_TEMPLATE", "DEFAULT_SYSTEM_PROMPT", "encode_example", "finetune", "format_chat", "response_loss"]
