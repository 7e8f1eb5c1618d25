"""Marks this folder as package data: the wheel ships the recipes as ``triton_llm.recipes``.

They are read with ``importlib.resources`` (see ``triton_llm/_package_data.py``), so an installed
package finds them without a checkout.
"""
