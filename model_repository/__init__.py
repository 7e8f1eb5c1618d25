"""Marks this folder as package data: the wheel ships it as ``triton_llm.model_repository``.

The templates are read with ``importlib.resources`` (see ``triton_llm/_package_data.py``), so an
installed package finds them without a checkout.
"""
