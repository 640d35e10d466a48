"""N-gram language models by counting: MLE, add-k and interpolated modified Kneser-Ney.

An order-N model predicts token w from the N-1 tokens before it (its history h):

    p(w | h) = c(h w) / c(h)                                       "mle"
    p(w | h) = (c(h w) + k) / (c(h) + k V)                         "add-k"
    p(w | h) = (a(h w) - D(a(h w))) / sum_v a(h v)                 "kn"  (interpolated
               + gamma(h) * p(w | h')                                     modified Kneser-Ney)

where c(.) counts occurrences in the training text, h' is h without its first token,
V is the vocabulary size, and for "kn":

* a(.) are the counts used at each order: raw counts c(.) at the highest order N,
  and *continuation* ("adjusted") counts at lower orders: the number of distinct
  tokens seen just before the n-gram, a(g) = |{x : c(x g) > 0}|.  An occurrence with
  nothing before it (the first n-gram of a stream, or an n-gram starting with <s>)
  counts as one left context of its own, so n-grams starting with <s> keep raw counts.
* D(a) is one of three discounts per order (Chen & Goodman 1998, eq. 26), computed
  from the counts-of-counts n_r = number of n-grams of that order with a = r:

      Y = n_1 / (n_1 + 2 n_2),   D_r = r - (r + 1) Y n_{r+1} / n_r   for r = 1, 2, 3+.

* gamma(h) = (D_1 N_1(h.) + D_2 N_2(h.) + D_3+ N_3+(h.)) / sum_v a(h v) is the mass the
  discounts freed, where N_r(h.) is the number of tokens w with a(h w) = r (3+: >= 3).
  It is exactly the weight given to the shorter history h'.
* the recursion ends in the uniform distribution: p(w | empty history) interpolates
  the unigram estimate with 1/V (KenLM's default --interpolate_unigrams).

This reproduces KenLM's ``lmplz`` (tested against its ARPA output, tests/test_ngram.py).

How the counting is fast.  An n-gram of order k is stored as one int64 *code*

    code = row of its (k-1)-token prefix in the order-(k-1) table * V + last token,

and each order's table is the sorted array of the distinct codes (``np.unique``).
Finding an n-gram is a binary search (``np.searchsorted``); everything is vectorized
over all positions of a text at once, one order at a time.  Codes never overflow:
they are at most (number of distinct (k-1)-grams) * V.

Two ways to fit:

* ``fit(ids, vocab_size=V)``: ``ids`` is ONE stream of tokens (character-level text).
* ``fit_sentences(sentences, vocab_size=V)``: one sentence per item, as KenLM's lmplz
  reads a text file with one sentence per line.  Two ids are reserved after the
  caller's vocabulary: ``bos = V`` (<s>) and ``eos = V + 1`` (</s>); the model's
  vocabulary becomes V + 2.  Each sentence is modelled as <s> w_1 ... w_m </s>; n-grams
  never cross sentence boundaries; <s> is only ever a history, never predicted
  (p(<s>) = 0).  The uniform floor is 1/(V + 1): every token except <s>.  KenLM always has
  an <unk> word, so to match it exactly the caller should reserve one id of V for <unk>
  (unseen words then get probability gamma(empty) / (V + 1), like KenLM's <unk>).
"""

import math

import numpy as np

SMOOTHINGS = ("mle", "add-k", "kn")
KENLM_FALLBACK_DISCOUNTS = (0.5, 1.0, 1.5)  # lmplz --discount_fallback defaults


def _as_ids(ids, vocab_size, name="ids"):
    """Check that ``ids`` is a 1-D array of integers in [0, vocab_size); return it as int64."""
    arr = np.asarray(ids)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of token ids, got shape {arr.shape}")
    if arr.size == 0:
        return arr.astype(np.int64)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must contain integer token ids, got dtype {arr.dtype}")
    lo, hi = int(arr.min()), int(arr.max())
    if lo < 0 or hi >= vocab_size:
        raise ValueError(f"{name} has token ids in [{lo}, {hi}] but vocab_size is {vocab_size}; "
                         f"every id must be in [0, {vocab_size - 1}]")
    return arr.astype(np.int64)


def _lookup(table, codes):
    """Row of each code in the sorted 1-D array ``table``, or -1 where it is absent."""
    if len(table) == 0:
        return np.full(len(codes), -1, dtype=np.int64)
    rows = np.minimum(np.searchsorted(table, codes), len(table) - 1)
    return np.where(table[rows] == codes, rows, -1)


def count_ngrams(ids, n):
    """Distinct n-grams of a token stream and how often each occurs.

    ids: (T,) int token ids.  Returns ``(ngrams, counts)``: ngrams (U, n), each row one
    distinct n-gram (sorted lexicographically), counts (U,) with counts.sum() == T - n + 1.
    """
    ids = np.asarray(ids)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if ids.ndim != 1 or len(ids) < n:
        raise ValueError(f"need a 1-D stream of at least n={n} tokens, got shape {ids.shape}")
    windows = np.lib.stride_tricks.sliding_window_view(ids, n)      # (T-n+1, n): window i = ids[i:i+n]
    return np.unique(windows, axis=0, return_counts=True)


def unseen_fraction(train_ids, val_ids, n):
    """Fraction of the n-token windows of ``val_ids`` that never occur in ``train_ids``."""
    train_ids, val_ids = np.asarray(train_ids, dtype=np.int64), np.asarray(val_ids, dtype=np.int64)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if len(val_ids) < n:
        raise ValueError(f"val_ids has {len(val_ids)} tokens, fewer than n={n}")
    V = int(max(train_ids.max(), val_ids.max())) + 1
    tables = _count_windows(train_ids, np.zeros(len(train_ids), np.int64), n, V)
    val_rows = _window_rows([t["codes"] for t in tables], val_ids, n, V)[n][n - 1:]
    return float(np.mean(val_rows < 0))


def _count_windows(tokens, seg_start, order, V):
    """Count every n-gram of order 1..order that lies inside one segment.

    tokens: (T,) int64; seg_start: (T,) index where the segment of each position begins.
    Returns a list ``tables`` (index k = order, index 0 = the empty n-gram) of dicts:
      codes  (n_k,) sorted codes = prefix_row * V + last token
      counts (n_k,) raw counts c(g)
      suffix (n_k,) row of g's last k-1 tokens in the order-(k-1) table
      rows   (T,)   row of the n-gram ending at each position, -1 if it would leave the segment
      starts (n_k,) how many times g begins a segment (no left context)
    """
    T = len(tokens)
    offset = np.arange(T) - seg_start          # tokens of the same segment before position j
    tables = [{"codes": np.zeros(1, np.int64), "counts": np.array([T]), "rows": np.zeros(T, np.int64)}]
    for k in range(1, order + 1):
        prev = tables[k - 1]["rows"]
        prefix = np.zeros(T, np.int64) if k == 1 else np.concatenate([[-1], prev[:-1]])
        valid = np.flatnonzero(offset >= k - 1)                # windows tokens[j-k+1 .. j]
        codes = prefix[valid] * V + tokens[valid]              # code = prefix_row * V + w
        uniq, first, inverse, counts = np.unique(codes, return_index=True, return_inverse=True,
                                                 return_counts=True)
        rows = np.full(T, -1, np.int64)
        rows[valid] = inverse.reshape(-1)
        begins = valid[offset[valid] == k - 1]                 # windows that start their segment
        tables.append({
            "codes": uniq, "counts": counts, "rows": rows,
            "suffix": prev[valid[first]],                      # last k-1 tokens end at the same j
            "starts": np.bincount(rows[begins], minlength=len(uniq)),
        })
    return tables


def _window_rows(codes_by_order, tokens, order, V):
    """rows[k, j] = row of the n-gram tokens[j-k+1 .. j] in the order-k table (-1: unseen
    or starting before position 0).  tokens: (T,) -> rows: (order + 1, T); rows[0] = 0."""
    T = len(tokens)
    rows = np.full((order + 1, T), -1, dtype=np.int64)
    rows[0] = 0
    for k in range(1, order + 1 if T else 1):
        prefix = np.zeros(T, np.int64) if k == 1 else np.concatenate([[-1], rows[k - 1][:-1]])
        ok = prefix >= 0
        rows[k][ok] = _lookup(codes_by_order[k], prefix[ok] * V + tokens[ok])
    return rows


def kn_discounts(a):
    """Modified Kneser-Ney discounts (D_0, D_1, D_2, D_3+) from the counts ``a`` of one order.

    Y = n1 / (n1 + 2 n2),  D_r = r - (r + 1) Y n_{r+1} / n_r  (Chen & Goodman eq. 26), where
    n_r = number of n-grams with count r.  Like lmplz --discount_fallback, falls back to
    (0.5, 1, 1.5) when a count-of-counts is zero or a discount leaves [0, r].
    """
    n = np.bincount(np.minimum(a, 5), minlength=6)[:5].astype(np.float64)   # n[r], r = 0..4
    if n[1] == 0 or n[2] == 0 or n[3] == 0:
        return np.array((0.0,) + KENLM_FALLBACK_DISCOUNTS)
    Y = n[1] / (n[1] + 2 * n[2])                                      # Y = n1 / (n1 + 2 n2)
    D = np.array([0.0] + [r - (r + 1) * Y * n[r + 1] / n[r] for r in (1, 2, 3)])
    if any(D[r] < 0 or D[r] > r for r in (1, 2, 3)):
        return np.array((0.0,) + KENLM_FALLBACK_DISCOUNTS)
    return D


class NGramLM:
    """A counting n-gram language model.

    order: N, the history is the N-1 previous tokens.  smoothing: "mle" | "add-k" | "kn".
    k: the pseudo-count of "add-k".  After ``fit``: ``vocab_size`` (the model's V),
    ``bos``/``eos`` (sentence mode ids, else None) and ``discounts`` (for "kn": (N+1, 4),
    row k = (0, D1, D2, D3+) of order k).
    """

    def __init__(self, order=3, smoothing="kn", k=1.0):
        if not isinstance(order, (int, np.integer)) or order < 1:
            raise ValueError(f"order must be an integer >= 1, got {order!r}")
        if smoothing not in SMOOTHINGS:
            raise ValueError(f"unknown smoothing {smoothing!r}; choose one of {SMOOTHINGS}")
        if smoothing == "add-k" and not k > 0:
            raise ValueError(f"add-k needs k > 0, got {k!r}")
        self.order, self.smoothing, self.k = int(order), smoothing, float(k)
        self.vocab_size = None
        self.bos = self.eos = None

    # ------------------------------------------------------------------ fitting
    def fit(self, ids, vocab_size):
        """Fit on ONE token stream ids: (T,) ints in [0, vocab_size).  Returns self."""
        self._check_vocab_size(vocab_size)
        ids = _as_ids(ids, vocab_size)
        if len(ids) == 0:
            raise ValueError("cannot fit on an empty stream")
        self.vocab_size, self.bos, self.eos = int(vocab_size), None, None
        self._num_predictable = self.vocab_size          # size of the uniform floor
        return self._fit(ids, np.zeros(len(ids), np.int64))

    def fit_sentences(self, sentences, vocab_size):
        """Fit on sentences (list of 1-D int arrays with ids in [0, vocab_size)), like lmplz.

        Reserves bos = vocab_size (<s>) and eos = vocab_size + 1 (</s>); the model's
        vocabulary becomes vocab_size + 2.  Returns self.
        """
        self._check_vocab_size(vocab_size)
        V = int(vocab_size)
        sentences = [_as_ids(s, V, name=f"sentence {i}") for i, s in enumerate(sentences)]
        if not sentences:
            raise ValueError("cannot fit on an empty list of sentences")
        self.vocab_size, self.bos, self.eos = V + 2, V, V + 1
        self._num_predictable = V + 1                    # everything except <s>
        padded = [np.concatenate([[self.bos], s, [self.eos]]) for s in sentences]
        lengths = np.array([len(p) for p in padded])
        seg_start = np.repeat(np.cumsum(lengths) - lengths, lengths)
        return self._fit(np.concatenate(padded), seg_start)

    def _fit(self, tokens, seg_start):
        N, V = self.order, self.vocab_size
        tables = _count_windows(tokens, seg_start, N, V)
        self._codes = [t["codes"] for t in tables]
        self._counts = [t["counts"].astype(np.float64) for t in tables]
        self._prefix = [None] + [t["codes"] // V for t in tables[1:]]      # row of h in order k-1
        # c(h) = sum_w c(h w): how often each history is followed by something
        self._context_total = [None] + [np.bincount(self._prefix[k], weights=self._counts[k],
                                                    minlength=len(self._codes[k - 1]))
                                        for k in range(1, N + 1)]
        if self.smoothing == "kn":
            self._fit_kneser_ney(tables)
        return self

    def _fit_kneser_ney(self, tables):
        N, V = self.order, self.vocab_size
        self.discounts = np.zeros((N + 1, 4))
        self._gamma = [None] * N                 # gamma[k-1][row of h]: weight of the shorter history
        self._prob = [None] * (N + 1)            # prob[k][row of h w]: interpolated p(w | h)
        p_lower = np.array([1.0 / self._num_predictable])      # order 0: uniform, p = 1 / V
        for k in range(1, N + 1):
            if k == N:
                a = tables[k]["counts"]                         # highest order: raw counts
            else:
                # continuation count: distinct left extensions x of g, a(g) = |{x : c(x g) > 0}|,
                # plus occurrences with nothing on their left (segment starts, e.g. "<s> ...")
                a = np.bincount(tables[k + 1]["suffix"], minlength=len(self._codes[k]))
                a = a + tables[k]["starts"]
            if k == 1 and self.bos is not None:
                a = a.copy()
                a[self._codes[1] == self.bos] = 0               # <s> is never predicted
            D = kn_discounts(a)
            self.discounts[k] = D
            prefix, n_hist = self._prefix[k], len(self._codes[k - 1])
            total = np.bincount(prefix, weights=a, minlength=n_hist)           # sum_w a(h w)
            freed = np.bincount(prefix, weights=D[np.minimum(a, 3)], minlength=n_hist)
            # gamma(h) = (D1 N1(h.) + D2 N2(h.) + D3+ N3+(h.)) / sum_w a(h w); 1 if h is no history
            gamma = np.divide(freed, total, out=np.ones(n_hist), where=total > 0)
            # p(w | h) = (a(h w) - D(a(h w))) / sum_v a(h v) + gamma(h) p(w | h')
            p = (a - D[np.minimum(a, 3)]) / total[prefix] + gamma[prefix] * p_lower[tables[k]["suffix"]]
            if k == 1 and self.bos is not None:
                p[self._codes[1] == self.bos] = 0.0
            self._gamma[k - 1], self._prob[k] = gamma, p
            p_lower = p
        # unigram distribution over the whole vocabulary (tokens never seen: gamma(empty) / V)
        self._unigram = np.full(V, self._gamma[0][0] / self._num_predictable)
        self._unigram[self._codes[1]] = self._prob[1]
        if self.bos is not None:
            self._unigram[self.bos] = 0.0

    def _check_vocab_size(self, vocab_size):
        if not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
            raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")

    def _check_fitted(self):
        if self.vocab_size is None:
            raise ValueError("this NGramLM is not fitted yet: call fit(ids, vocab_size) or "
                             "fit_sentences(sentences, vocab_size) first")

    # ------------------------------------------------------------------ scoring
    def log_probs(self, ids):
        """Natural-log probability of each token of a stream given the up-to-(N-1) tokens
        before it in the same stream (the first tokens use shorter histories).

        ids: (T,) -> (T,) float64; -inf where the model gives probability 0.
        """
        self._check_fitted()
        ids = _as_ids(ids, self.vocab_size)
        N, T = self.order, len(ids)
        if T == 0:
            return np.zeros(0)
        rows = _window_rows(self._codes, ids, N, self.vocab_size)   # rows[k, j]: tokens[j-k+1..j]
        with np.errstate(divide="ignore"):
            if self.smoothing == "kn":
                lp = np.log(self._unigram[ids])
                for k in range(2, N + 1):
                    hist = np.concatenate([[-1], rows[k - 1][:-1]])     # history: tokens[j-k+1..j-1]
                    seen = rows[k] >= 0
                    backoff = np.log(self._gamma[k - 1][np.maximum(hist, 0)])
                    # p(w|h) = table value if h w was seen, else gamma(h) p(w|h'); unseen h: p(w|h')
                    lp = np.where(seen, np.log(self._prob[k][np.maximum(rows[k], 0)]),
                                  np.where(hist >= 0, lp + backoff, lp))
            else:
                lp = np.empty(T)
                korder = np.minimum(N, np.arange(T) + 1)              # full order, shorter at start
                for k in range(1, N + 1):
                    j = np.flatnonzero(korder == k)
                    hist = np.zeros(len(j), np.int64) if k == 1 else rows[k - 1][j - 1]
                    full = rows[k][j]
                    c_hw = np.where(full >= 0, self._counts[k][np.maximum(full, 0)], 0.0)
                    c_h = np.where(hist >= 0, self._context_total[k][np.maximum(hist, 0)], 0.0)
                    lp[j] = np.log(self._count_formula(c_hw, c_h))
            if self.bos is not None:
                lp[ids == self.bos] = -np.inf                          # <s> is never predicted
        return lp

    def _count_formula(self, c_hw, c_h):
        if self.smoothing == "mle":
            return np.divide(c_hw, c_h, out=np.zeros_like(c_hw), where=c_h > 0)   # c(hw) / c(h)
        return (c_hw + self.k) / (c_h + self.k * self._num_predictable)           # (c+k)/(c(h)+kV)

    def cross_entropy(self, ids):
        """Mean negative log-probability in nats/token (inf if a token has probability 0)."""
        lp = self.log_probs(ids)
        if len(lp) == 0:
            raise ValueError("cross_entropy of an empty stream is undefined")
        return float(-np.mean(lp))

    def sentence_log_probs(self, sentence):
        """Sentence mode: natural-log probs of w_1 .. w_m and </s> given <s> w_1 ... (m + 1,).
        Their sum / ln(10) is KenLM's ``Model.score(sentence)``."""
        self._check_fitted()
        if self.bos is None:
            raise ValueError("sentence_log_probs needs a model fitted with fit_sentences")
        s = _as_ids(sentence, self.bos, name="sentence")
        return self.log_probs(np.concatenate([[self.bos], s, [self.eos]]))[1:]

    # ------------------------------------------------------------------ next-token distribution
    def distribution(self, context):
        """Next-token probabilities p(. | context): (vocab_size,), sums to 1.

        context: 1-D ids, only the last N-1 are used.  ("mle" with a never-seen history
        has no estimate at all and returns zeros.)
        """
        self._check_fitted()
        context = _as_ids(context, self.vocab_size, name="context")
        N, V = self.order, self.vocab_size
        context = context[len(context) - (N - 1):] if N > 1 else context[:0]
        hist_rows = _window_rows(self._codes, context, N - 1, V)[:, -1] if len(context) else [0]
        if self.smoothing == "kn":
            p = self._unigram.copy()
            for k in range(2, min(N, len(context) + 1) + 1):
                h = hist_rows[k - 1]                                 # row of the last k-1 tokens
                if h < 0:
                    break
                lo, hi = np.searchsorted(self._codes[k], [h * V, (h + 1) * V])   # children h w
                p *= self._gamma[k - 1][h]                           # gamma(h) p(w | h') ...
                p[self._codes[k][lo:hi] - h * V] = self._prob[k][lo:hi]   # ... unless h w was seen
            return p
        k = min(N, len(context) + 1)
        h = hist_rows[k - 1]
        c_hw = np.zeros(V)
        c_h = np.zeros(V)
        if h >= 0:
            lo, hi = np.searchsorted(self._codes[k], [h * V, (h + 1) * V])
            c_hw[self._codes[k][lo:hi] - h * V] = self._counts[k][lo:hi]
            c_h[:] = self._context_total[k][h]
        p = self._count_formula(c_hw, c_h)
        if self.bos is not None:
            p[self.bos] = 0.0
        return p

    def generate(self, context, num_tokens, temperature=1.0, rng=None):
        """Sample ``num_tokens`` new ids after ``context``: (num_tokens,) int64.

        Temperature T rescales log-probs: p_T(w) proportional to exp(log p(w) / T); T -> 0
        approaches argmax (greedy), T = 1 samples from the model itself.
        """
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature!r}")
        rng = np.random.default_rng() if rng is None else rng
        tokens = list(_as_ids(context, self.vocab_size, name="context"))
        new = []
        for _ in range(int(num_tokens)):
            p = self.distribution(np.array(tokens[-self.order:], dtype=np.int64))
            if p.sum() == 0:
                raise ValueError("the model has no next-token estimate for this context "
                                 "('mle' never saw the history); use smoothing 'add-k' or 'kn'")
            with np.errstate(divide="ignore"):
                logits = np.log(p) / temperature                     # log p / T
            q = np.exp(logits - logits.max())                        # softmax, stable
            token = int(rng.choice(len(q), p=q / q.sum()))
            tokens.append(token)
            new.append(token)
        return np.array(new, dtype=np.int64)

    # ------------------------------------------------------------------ ARPA export
    def to_arpa(self, path, itos):
        """Write a "kn" model as an ARPA file (log10 probabilities and backoffs), as lmplz does.

        itos: list mapping the caller's ids 0..V-1 to strings (<s>, </s> are added).
        """
        self._check_fitted()
        if self.smoothing != "kn":
            raise ValueError("to_arpa writes Kneser-Ney models only (smoothing='kn')")
        fitted_V = self.vocab_size if self.bos is None else self.bos    # the caller's vocab_size
        if len(itos) != fitted_V:
            raise ValueError(f"itos has {len(itos)} names but the model was fitted with vocab_size={fitted_V}")
        names = list(itos) + (["<s>", "</s>"] if self.bos is not None else [])
        N, V = self.order, self.vocab_size
        unk = [names.index("<unk>")] if "<unk>" in names else []
        no_history = set(unk) | ({self.eos} if self.eos is not None else set())
        sections = []
        words = [np.zeros((1, 0), np.int64)]                           # token ids of each n-gram
        for k in range(1, N + 1):
            last = self._codes[k] % V
            words.append(np.column_stack([words[k - 1][self._prefix[k]], last]))
            with np.errstate(divide="ignore"):
                log_p = np.log10(self._prob[k])
            if k == 1 and self.bos is not None:
                log_p[last == self.bos] = 0.0                          # lmplz writes p(<s>) = 1
            lines = []
            for i in range(len(last)):
                line = f"{log_p[i]:.7g}\t{' '.join(names[w] for w in words[k][i])}"
                if k < N:
                    bo = 0.0 if last[i] in no_history else math.log10(self._gamma[k][i])
                    line += f"\t{bo:.7g}"
                lines.append(line)
            if k == 1:
                for w in unk:
                    if w not in set(last.tolist()):                    # <unk> never seen: gamma(empty)/V
                        lines.insert(0, f"{math.log10(self._unigram[w]):.7g}\t<unk>\t0")
            sections.append(lines)
        with open(path, "w") as f:
            f.write("\\data\\\n")
            for k, lines in enumerate(sections, 1):
                f.write(f"ngram {k}={len(lines)}\n")
            for k, lines in enumerate(sections, 1):
                f.write(f"\n\\{k}-grams:\n" + "\n".join(lines) + "\n")
            f.write("\n\\end\\\n")
