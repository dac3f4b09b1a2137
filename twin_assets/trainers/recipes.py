"""Fine-tuning recipes as plain data (Dagster-free, so a benchmark on a bare GPU machine reads the same values):
the small-model defaults, the book's values for real-size models, and what the trainer decides itself."""

SMALL_MODEL_DEFAULTS = {
    "sft": {"learning_rate": 2e-3, "num_train_epochs": 2, "per_device_train_batch_size": 4, "seed": 0},
    "dpo": {"learning_rate": 5e-4, "num_train_epochs": 1, "per_device_train_batch_size": 4, "beta": 0.5, "seed": 0},
    "lora": {"r": 8, "lora_alpha": 16, "lora_dropout": 0.0},
}
# The LLM Engineer's Handbook's recipe for an 8B model (its repository): a reference, not a default here.
BOOK = {
    "sft": {"learning_rate": 3e-4, "num_train_epochs": 3, "max_length": 2048},
    "dpo": {"learning_rate": 2e-6, "num_train_epochs": 1, "beta": 0.5, "max_length": 1024},
    "lora": {"r": 32, "lora_alpha": 32, "lora_dropout": 0.0},
}
# What the trainer decides itself, from the model and the machine: not settable.
DECIDED_HERE = {"output_dir", "use_cpu", "bf16", "fp16", "report_to", "save_strategy", "target_modules",
                "task_type", "eval_strategy", "logging_steps", "gradient_checkpointing"}
