"""PARROT: preference-anchored rationales, consistency filtering and distillation into a student critic.

Phases (each one command of `python -m training.parrot`): `generate` (a teacher writes pairwise
rationales that know the human preference), `filter` (format, self-consistency, leakage and
label-free re-prediction checks, each recorded), `distill` (SFT of a Qwen-VL student on the kept
rationales, with no label in its input), `evaluate` (pairwise preference accuracy), and `run` (all).
"""
