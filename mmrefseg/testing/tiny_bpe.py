# Copyright (c) mmrefseg contributors.
"""The ``tiny_bpe`` tokenizer: a small byte-level BPE trained in memory.

Tiny CPU configs, tests and benchmarks use it so that nothing is downloaded.
Configs keep asking for it by name (``dict(type='tiny_bpe', vocab_size=...)``
through :func:`mmrefseg.utils.build_tokenizer`); only the corpus and the
training live here, away from the tokenizer code real models use.
"""
from transformers import PreTrainedTokenizerBase

from mmrefseg.utils.tokenizer import (
    IM_END_TOKEN,
    IM_START_TOKEN,
    IMG_CONTEXT_TOKEN,
    IMG_END_TOKEN,
    IMG_START_TOKEN,
    PAD_TOKEN,
)

# Words the tiny tokenizer learns merges for; anything else still encodes
# byte by byte, so the corpus only affects sequence length, never coverage.
TINY_CORPUS_WORDS = (
    'the a an of in on at to is are and or with this that these those it its '
    'image picture photo please segment can you what where which who show '
    'output mask masks segmentation results result sure they here there '
    'referred object objects shape shapes one ones thing respond '
    'red green blue yellow orange purple pink cyan white black gray grey '
    'brown magenta teal circle square triangle star diamond rectangle hexagon '
    'ellipse cross heart left right top bottom upper lower middle center '
    'centre leftmost rightmost topmost bottommost big bigger biggest large '
    'larger largest small smaller smallest tiny huge all two three both '
    'others system user assistant you are a helpful assistant seg '
    'man woman person people guy girl boy shirt car dog cat horse table chair '
    'near far front back behind next beside above below between first second '
    'third last other no none not any every each some').split()
TINY_CORPUS_PHRASES = (
    'Can you segment {} in this image?',
    'Please segment {} in this image.',
    'What are {} in this image? Please respond with segmentation masks.',
    'What are {} in this image? Please output segmentation masks.',
    'The segmentation results are {} [SEG].',
    'Sure, they are {}:[SEG].',
    'Sure, the mask of {} is [SEG].',
    'Sure, the segmentation of {} is [SEG].',
    'Sure, the referred {} is [SEG].',
    "Sure, here is the segmentation mask for '{}':\n<seg>{} *16| others *4\n "
    'others *16\n</seg>',
)
# Special tokens in id order: the pad token gets id 0 and the image context
# token id 5, which the tiny InternVL configs use as ``image_token_id``.
TINY_SPECIAL_TOKENS = (PAD_TOKEN, IM_START_TOKEN, IM_END_TOKEN,
                       IMG_START_TOKEN, IMG_END_TOKEN, IMG_CONTEXT_TOKEN)


def tiny_corpus() -> list:
    """The fixed training corpus: prompt and answer templates over the words.

    Returns:
        list[str]: the corpus lines, identical on every call.
    """
    corpus = []
    words = TINY_CORPUS_WORDS
    for i, phrase in enumerate(TINY_CORPUS_PHRASES):
        for j in range(0, len(words), 3):
            fill = ' '.join(words[j:j + 3 + i % 3])
            corpus.append(phrase.format(fill, fill))
    corpus.extend(' '.join(words[k:k + 7]) for k in range(len(words)))
    corpus.extend(f'{w} *{n}|' for w in ('others', 'shape') for n in range(33))
    return corpus


def train_tiny_bpe(vocab_size: int) -> PreTrainedTokenizerBase:
    """Train a byte-level BPE on the fixed corpus; same inputs, same merges.

    Args:
        vocab_size (int): target vocabulary size, special tokens included.

    Returns:
        PreTrainedTokenizerBase: a fast tokenizer padding on the right, with
        ``<|im_end|>`` as its end-of-sequence token.
    """
    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    special = list(TINY_SPECIAL_TOKENS)
    tok = Tokenizer(models.BPE())
    # Split digits one by one like Qwen2/InternLM2 so run lengths tokenise
    # the way they do with the real tokenizers.
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False)
    tok.train_from_iterator(tiny_corpus(), trainer=trainer)
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token=PAD_TOKEN,
        eos_token=IM_END_TOKEN,
        additional_special_tokens=special[1:])
    hf_tok.padding_side = 'right'
    return hf_tok
