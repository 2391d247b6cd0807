"""Tiny random models that tests build offline (no hub), shared by several test files."""

from __future__ import annotations

from pathlib import Path

VOCABULARY = """a an the dog cat bird on in of with sitting red blue green small big tree car
house man woman then short caption this image : picture photo user assistant describe it"""
WORDS = VOCABULARY.split()  # the tiny models' words (their tokenizers are written here)


def build_tiny_blip(path: Path) -> Path:
    """A tiny random BLIP captioner with an offline tokenizer, saved to ``path``."""
    import torch
    from transformers import (
        BertTokenizer,
        BlipConfig,
        BlipForConditionalGeneration,
        BlipImageProcessorPil,
        BlipProcessor,
    )

    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    tokenizer = BertTokenizer(vocab=vocab, bos_token="[DEC]", model_max_length=512)
    torch.manual_seed(0)
    config = BlipConfig(
        text_config={
            "vocab_size": len(vocab),
            "hidden_size": 32,
            "encoder_hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "max_position_embeddings": 512,
            "bos_token_id": vocab["[DEC]"],
            "pad_token_id": vocab["[PAD]"],
            "sep_token_id": vocab["[SEP]"],
            "eos_token_id": vocab["[SEP]"],
        },
        vision_config={
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "image_size": 32,
            "patch_size": 8,
            "projection_dim": 32,
        },
        projection_dim=32,
    )
    model = BlipForConditionalGeneration(config).eval()
    # Random weights, but captions of words: the decoder never picks a special token (so it
    # never stops early either, and every caption is max_new_tokens words long).
    head = model.text_decoder.cls.predictions
    with torch.no_grad():
        for bias in (head.decoder.bias, head.bias):
            bias[: len(specials)] = -1e4
    model.save_pretrained(path)
    image_processor = BlipImageProcessorPil(size={"height": 32, "width": 32})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(path)
    return path
