"""LoRA targets from the model's own architecture: every linear layer inside its blocks (attention and MLP
projections), by name, whatever the architecture calls them."""

import torch


def lora_targets(model: torch.nn.Module) -> list[str]:
    """The linear layers' names, once each (q_proj, k_proj, ... for Llama, Qwen2 and Mistral); the output
    head is left out. ValueError when there are none."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                    if isinstance(module, torch.nn.Linear) and module is not head and "." in name})
    if not names:
        raise ValueError(f"{type(model).__name__} has no linear layers inside its blocks: no LoRA targets")
    return names
