"""Runs llama.cpp's convert_hf_to_gguf.py, letting it accept the tokenizers this project trains.

The converter identifies a BPE pre-tokenizer by hashing how it splits a probe text, so any tokenizer with
a new vocabulary is unknown to it, even when its pre-tokenizer is exactly GPT-2's. Ours is (byte-level,
GPT-2 regex, see tiny_llama.py) and is marked in tokenizer_config.json: for those, and only those, the
answer is "gpt-2" (llama.cpp's name for that pre-tokenizer). The GGUF asset check then verifies that llama.cpp tokenizes exactly as transformers does.

Usage: python convert_entry.py CONVERTER_DIR MODEL_DIR [convert_hf_to_gguf.py options]
"""

import json
import runpy
import sys
from pathlib import Path

from twin_assets.models.tiny_llama import TWIN_TOKENIZER_MARK


def trained_here(model_dir: Path) -> bool:
    config = model_dir / "tokenizer_config.json"
    return config.is_file() and bool(json.loads(config.read_text()).get(TWIN_TOKENIZER_MARK))


def main() -> None:
    converter, model_dir = Path(sys.argv[1]), Path(sys.argv[2])
    sys.path[:0] = [str(converter), str(converter / "gguf-py")]
    from conversion import base

    recognise = base.TextModel.get_vocab_base_pre

    def get_vocab_base_pre(self, tokenizer) -> str:
        try:
            return recognise(self, tokenizer)
        except NotImplementedError:
            if trained_here(Path(self.dir_model)):
                return "gpt-2"
            raise

    base.TextModel.get_vocab_base_pre = get_vocab_base_pre
    script = converter / "convert_hf_to_gguf.py"
    sys.argv = [str(script), str(model_dir), *sys.argv[3:]]
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main()
