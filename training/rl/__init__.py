"""RL of the generator with critic rewards: DiffusionNFT and Flow-GRPO on a LoRA of the transformer.

Files: config (RLConfig), models (model adapters; FLUX here, Qwen-Image in models_qwen), sampling
(ODE / SDE rollouts with log-probs), rewards (critic -> masked rewards), advantages (per prompt + source
image), losses, lora (adapters and diffusers-format saving), watch (reward-hacking checks), trainer (RLTrainer).
"""
