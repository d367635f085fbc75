"""zoo.hub"""
