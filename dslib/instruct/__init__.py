"""Instruction tuning and chat (DeepSeek-Coder §3.7): the released chat template, supervised fine-tuning with the
loss on responses only, and a terminal chat."""
