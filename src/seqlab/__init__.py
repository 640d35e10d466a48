"""seqlab: the shared library of the course "From N-grams to Mamba".

Modules, one idea each:

- ``seqlab.runtime``  device, seeding, budget (smoke | cpu | gpu), Colab detection, run card
- ``seqlab.data``     named corpora with verified downloads, tokenizers (char, word, byte-level BPE), batches, the Multi30k translation pipeline
- ``seqlab.models``   one file per model family (``ngram``, ``rnn``, ``seq2seq``, ``attention``, ``transformer``, ``gpt``, ``bert``, ``mamba``, ``minrnn``, ``linear_attention``, ``hyena``, ``rwkv`` so far)
- ``seqlab.scan``     the linear recurrence h_t = a_t h_{t-1} + b_t, step by step and as a parallel scan (Part VI)
- ``seqlab.train``    one training loop for every neural model (truncated BPTT; several processes under torchrun with DDP)
- ``seqlab.generate`` sampling: greedy, temperature, top-k, top-p; recurrent state or KV cache carried; greedy and beam search for translation
- ``seqlab.bench``    honest side-by-side timing and memory (``python -m seqlab bench rnn|attention|gpt``)
- ``seqlab.metrics``  nats <-> bits per character <-> perplexity; BLEU (sacrebleu)
- ``seqlab.viz``      the plots the labs share
"""
__version__ = "0.1.0"
