"""Paddle's reason for a failure is kept when its stacks are dropped."""
from __future__ import annotations

from zoo.errors import paddle_message

USER_CODE = """In user code:

    File "/work/model.py", line 3, in forward
      return paddle.matmul(a, b)

    InvalidArgumentError: The input tensor X's dimension 1 should equal Y's dimension 0, but got 3 and 5.
      [Hint: Expected x_dims[1] == y_dims[0]] (at /paddle/phi/kernels/impl/matmul_kernel_impl.h:100)
"""

SUMMARY = """
--------------------------------------
C++ Traceback (most recent call last):
--------------------------------------
0   paddle::framework::Executor::Run
----------------------
Error Message Summary:
----------------------
(InvalidArgument) The shape of input[0] is [2, 3] but the model declares [2, 4].
"""


def test_the_reason_after_user_code_is_kept() -> None:
    assert paddle_message(RuntimeError(USER_CODE)).startswith("InvalidArgumentError: The input tensor X's dimension 1")


def test_the_reason_after_the_cpp_stack_is_kept() -> None:
    assert paddle_message(RuntimeError(SUMMARY)) == "(InvalidArgument) The shape of input[0] is [2, 3] but the model declares [2, 4]."


def test_a_plain_message_is_its_first_line() -> None:
    assert paddle_message(ValueError("tuple index out of range\nmore")) == "tuple index out of range"
    assert paddle_message(ValueError("")) == "ValueError"
