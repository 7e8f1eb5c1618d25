"""What the CPU reference runtime can run.

One owner for the rule that the ``cpu`` build backend checks when it plans a build and the
runtime checks when it loads a checkpoint (the two packages may not import each other).
"""

ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM")
