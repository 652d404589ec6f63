import pytest
import torch

from darkseg.models.ops.argmax import class_argmax


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.uint8, torch.int64])
@pytest.mark.parametrize("dim", [0, 1, -1])
def test_class_argmax_equals_torch_argmax_with_ties(dtype: torch.dtype, dim: int) -> None:
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (4, 9, 7, 5), generator=gen).to(dtype)  # many ties: the first index must win
    out = class_argmax(scores, dim)
    assert out.dtype == torch.int64
    assert torch.equal(out, scores.argmax(dim))


def test_class_argmax_counts_nan_as_largest_like_argmax() -> None:
    scores = torch.rand(2, 5, 3, 3)
    scores[0, 3, 1, 1] = float("nan")
    scores[1, 1, 0, 2] = float("nan")
    scores[1, 4, 0, 2] = float("nan")
    out = class_argmax(scores)
    assert torch.equal(out, scores.argmax(1))
    assert out[0, 1, 1] == 3 and out[1, 0, 2] == 1
