"""zoo.quant"""
