"""Exporters and runners: Paddle Inference and Paddle Lite (.nb), with validation and benchmarking.

Installed as `zoo.deploy`.
"""
