"""`blueprint run DIR`: generate with a decoder build, or embed / fill masks / classify with an encoder."""

from __future__ import annotations

import json
import sys

from blueprint.errors import BlueprintError


def add_arguments(parser) -> None:
    parser.add_argument("build_dir", metavar="DIR", help="a directory written by blueprint build")
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--ids", action="append", metavar="'1 2 3'",
                     help="input token ids, space separated (repeat for a batch of encoder inputs)")
    src.add_argument("--text", action="append", help="input text (needs a tokenizer; repeat for a batch)")
    parser.add_argument("--tokenizer", metavar="PATH", help="tokenizer.json (default: the build's own)")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="decoders: default 32")
    parser.add_argument("--temperature", type=float, default=None, help="decoders: 0 = greedy (default)")
    parser.add_argument("--top-k", type=int, default=None, help="decoders, when sampling (--temperature > 0)")
    parser.add_argument("--top-p", type=float, default=None, help="decoders, when sampling (--temperature > 0)")
    parser.add_argument("--seed", type=int, default=None,
                        help="decoders, when sampling: seed (>= 0) for reproducible samples")
    parser.add_argument("--eos", metavar="'ID ...'", default=None,
                        help="decoders: stop ids, space separated (default: the spec's tokenizer.eos_id; '' for none)")
    parser.add_argument("--k", type=int, default=None,
                        help="masked-LM encoders: how many predictions per mask (default 5)")
    parser.add_argument("--json", action="store_true", help="print one machine-readable JSON object")


def _parse_ids(text: str, flag: str) -> list[int]:
    try:
        return [int(t) for t in text.replace(",", " ").split()]
    except ValueError:
        raise BlueprintError(f"{flag} takes integers separated by spaces, got '{text}'") from None


def run(args) -> int:
    from blueprint import runtime

    model = runtime.load(args.build_dir, tokenizer=args.tokenizer)
    if not args.ids and not args.text:
        raise BlueprintError("no input", hint="pass --ids '1 2 3' or --text '...'")
    _refuse_no_ops(args, model.spec)
    if isinstance(model, runtime.Decoder):
        return _run_decoder(model, args)
    return _run_encoder(model, args)


_DECODER_ONLY = ("max_new_tokens", "temperature", "top_k", "top_p", "seed", "eos")
_SAMPLING_ONLY = ("top_k", "top_p", "seed")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _refuse_no_ops(args, spec) -> None:
    """An option that would do nothing for this build is an error, not silently ignored:
    the user meant something by it (--top-k without sampling still decodes greedily)."""
    given = lambda names: [_flag(n) for n in names if getattr(args, n) is not None]  # noqa: E731
    if not spec.is_decoder:
        wasted = given(_DECODER_ONLY)
        if wasted:
            raise BlueprintError(f"{', '.join(wasted)} only apply to decoders; {args.build_dir} holds an encoder "
                                 f"({spec.head.kind} head)", hint=f"remove {', '.join(wasted)}")
        if args.k is not None and spec.head.kind != "masked_lm":
            raise BlueprintError(f"--k only applies to a masked_lm head; this build's head is {spec.head.kind}",
                                 hint="remove --k")
        return
    if args.k is not None:
        raise BlueprintError("--k only applies to masked-LM encoders; this build is a decoder",
                             hint="remove --k (--top-k limits sampling to the k likeliest ids)")
    if not args.temperature:
        wasted = given(_SAMPLING_ONLY)
        if wasted:
            raise BlueprintError(f"{', '.join(wasted)} only apply when sampling, and decoding is greedy "
                                 f"(--temperature {args.temperature or 0})",
                                 hint="add --temperature T with T > 0 (e.g. 0.8), or remove " + ", ".join(wasted))
    if args.seed is not None and args.seed < 0:
        raise BlueprintError(f"--seed must be >= 0, got {args.seed}")


def _run_decoder(model, args) -> int:
    from blueprint.runtime import Sampling

    if (args.ids and len(args.ids) > 1) or (args.text and len(args.text) > 1):
        raise BlueprintError("generation takes one prompt", hint="pass --ids or --text once")
    if args.text:
        if model.tokenizer is None:
            raise BlueprintError("--text needs a tokenizer, and this build has no tokenizer.json",
                                 hint="pass --tokenizer PATH, or use --ids")
        prompt = model.tokenizer.encode(args.text[0])
    else:
        prompt = _parse_ids(args.ids[0], "--ids")
    stop = None if args.eos is None else _parse_ids(args.eos, "--eos")
    sampling = Sampling(temperature=args.temperature or 0.0, top_k=args.top_k, top_p=args.top_p)
    max_new_tokens = 32 if args.max_new_tokens is None else args.max_new_tokens
    if max_new_tokens < 0:
        raise BlueprintError(f"--max-new-tokens must be >= 0, got {max_new_tokens}")
    prompt = model.check_prompt(prompt)  # every user error before the first byte of output
    text_mode = args.text is not None and not args.json
    text = _TextStream(model.tokenizer.decode, prompt) if text_mode else None

    def stream(token: int) -> None:  # print each token as it comes
        if args.json:
            return
        sys.stdout.write(text.push(token) if text_mode else f"{token} ")
        sys.stdout.flush()

    if not args.json:
        sys.stdout.write(args.text[0] if text_mode else " ".join(map(str, prompt)) + " | ")
        sys.stdout.flush()
    result = model.generate(prompt, max_new_tokens=max_new_tokens, sampling=sampling, seed=args.seed,
                            stop_ids=stop, on_token=stream)
    if text_mode:
        sys.stdout.write(text.finish())
    if args.json:
        out = {"prompt_ids": result.prompt_ids, "ids": result.ids, "stop_reason": result.stop_reason,
               "prefill_ms": round(result.prefill_seconds * 1e3, 3),
               "decode_tokens_per_s": round(result.tokens_per_second, 1)}
        if model.tokenizer is not None:
            out["text"] = model.tokenizer.decode(result.ids)
        print(json.dumps(out))
    else:
        print(flush=True)  # the generated text is a line of its own: it ends with a newline on stdout
        print(f"[{len(result.ids)} tokens, stop: {result.stop_reason}, prefill {result.prefill_seconds * 1e3:.1f} ms, "
              f"{result.tokens_per_second:.0f} tokens/s]", file=sys.stderr)
    return 0


class _TextStream:
    """Incremental text of generated ids. Decodes prompt + generated ids together and yields the
    growth (decoding the new ids alone would lose the space a tokenizer puts before a word), and
    holds text back while it ends in an incomplete character: a byte-level BPE splits one
    character (é, 中, an emoji) over several ids, and the partial decode shows U+FFFD."""

    def __init__(self, decode, prompt: list[int]):
        self.decode, self.ids = decode, list(prompt)
        self.printed = decode(self.ids)

    def push(self, token: int) -> str:
        self.ids.append(token)
        text = self.decode(self.ids)
        if text.endswith("\ufffd"):
            return ""  # wait for the ids that complete the character
        return self._advance(text)

    def finish(self) -> str:
        """Whatever was held back (an incomplete character at the very end stays U+FFFD)."""
        return self._advance(self.decode(self.ids))

    def _advance(self, text: str) -> str:
        new, self.printed = text[len(self.printed):], text
        return new


def _run_encoder(model, args) -> int:
    import numpy as np

    batch = [_parse_ids(t, "--ids") for t in args.ids] if args.ids else model.tokenize(args.text)
    kind = model.spec.head.kind
    if kind == "masked_lm":
        out = {"predictions": [model.fill_mask(row, top_k=5 if args.k is None else args.k) for row in batch]}
        lines = [f"input {r} position {m['position']}: " + ", ".join(
            f"{p['id']}{_tok(model, p['id'])} {p['prob']:.3f}" for p in m["top"])
            for r, preds in enumerate(out["predictions"]) for m in preds]
    elif kind == "classification":
        scores = model.classify(batch)
        if scores.shape[1] == 1:  # one label: the raw score (a probability would always be 1)
            out = {"scores": scores[:, 0].tolist()}
            lines = [f"input {r}: score {s[0]:+.4f}" for r, s in enumerate(scores)]
        else:
            out = {"scores": scores.tolist(), "labels": scores.argmax(-1).tolist()}
            lines = [f"input {r}: label {int(s.argmax())} scores " + " ".join(f"{v:.4f}" for v in s)
                     for r, s in enumerate(scores)]
    else:
        emb = model.encode(batch)
        out = {"embeddings": emb.tolist()}
        lines = [f"input {r}: [{emb.shape[1]}] norm {float(np.linalg.norm(e)):.4f} first "
                 + " ".join(f"{v:+.4f}" for v in e[:4]) for r, e in enumerate(emb)]
        if len(emb) > 1:  # what several sentences are usually embedded for: how alike they are
            wide = emb.astype(np.float64)
            unit = wide / np.maximum(np.linalg.norm(wide, axis=-1, keepdims=True), 1e-12)
            cosine = unit @ unit.T
            out["cosine"] = cosine.tolist()
            lines += ["cosine similarity"] + [f"  input {r}: " + " ".join(f"{v:+.4f}" for v in row)
                                              for r, row in enumerate(cosine)]
    print(json.dumps(out) if args.json else "\n".join(lines))
    return 0


def _tok(model, i: int) -> str:
    if model.tokenizer is None:
        return ""
    return f" {model.tokenizer.decode([i])!r}"
