"""Data masking: find sensitive values in what a model is about to read, replace them with
placeholders, and put the originals back into its answer. The plugin that uses it is
``tollway.plugins.ai_data_masking``.

Read in this order: ``detectors`` (the built-in kinds of sensitive value and the checks
that keep look-alikes out), ``rules`` (Higress's replace_roles and deny words),
``normalise`` (the form texts are matched in as well: NFKC, zero-width characters and
soft hyphens removed; request-block uses it too), ``masker`` (one config compiled; one
call masked), ``vault`` (a call's placeholders and the way back, also across stream
events), ``bodies`` (where prompt and answer text sits in each API's JSON), ``streams``
(restoring an SSE answer event by event), ``refusal`` (the deny answer in the client's
protocol). ``scanner`` and ``shapes`` make finding 100 patterns in 10 KB cost a fraction
of a millisecond instead of tens of milliseconds.
"""
