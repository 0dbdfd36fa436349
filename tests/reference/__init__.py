"""Deliberately simple reference implementations that the real code is tested against."""
