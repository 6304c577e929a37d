"""
padfree's C++ kernels. Use the padfree package, not this module.
"""
from __future__ import annotations
import numpy
import numpy.typing
import typing
__all__: list[str] = ['EncoderCore', 'EncoderMask', 'PackedLinear', 'activation_f32', 'attention_packed_f32', 'attention_padded_f32', 'cpu_info', 'erf_f32', 'exp_f32', 'get_isa', 'layer_norm_f32', 'masked_softmax_f32', 'masked_softmax_f64', 'set_isa']
class PackedLinear:
    """
    Weights (n, k) packed once; forward computes act(x W^T + b) + r.
    """
    def __getstate__(self) -> tuple:
        ...
    def __init__(self, weight: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], bias: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None) -> None:
        ...
    def __setstate__(self, arg0: tuple) -> None:
        ...
    def forward(self, x: numpy.ndarray, out: numpy.ndarray, residual: numpy.ndarray | None, activation: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    def unpack(self) -> tuple:
        """
        (weight (n, k), bias (n,) or None) as float32 copies.
        """
    @property
    def k(self) -> int:
        ...
    @property
    def n(self) -> int:
        ...
class EncoderMask:
    causal: bool
    keep: numpy.ndarray | None
    def __init__(self) -> None:
        ...
    @property
    def bias(self) -> numpy.typing.NDArray[numpy.float32] | None:
        ...
    @bias.setter
    def bias(self, arg0: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None) -> None:
        ...
    @property
    def stride_batch(self) -> int:
        ...
    @stride_batch.setter
    def stride_batch(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def stride_head(self) -> int:
        ...
    @stride_head.setter
    def stride_head(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def stride_query(self) -> int:
        ...
    @stride_query.setter
    def stride_query(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def window_left(self) -> int:
        ...
    @window_left.setter
    def window_left(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
    @property
    def window_right(self) -> int:
        ...
    @window_right.setter
    def window_right(self, arg0: typing.SupportsInt | typing.SupportsIndex) -> None:
        ...
class EncoderCore:
    def __init__(self, d_model: typing.SupportsInt | typing.SupportsIndex, heads: typing.SupportsInt | typing.SupportsIndex, dim_feedforward: typing.SupportsInt | typing.SupportsIndex, norm_first: bool, activation: typing.SupportsInt | typing.SupportsIndex, layer_norm_eps: typing.SupportsFloat | typing.SupportsIndex, final_norm_eps: typing.SupportsFloat | typing.SupportsIndex, layers: list, final_norm_weight: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None, final_norm_bias: typing.Annotated[numpy.typing.ArrayLike, numpy.float32] | None) -> None:
        ...
    def final_norm_state(self) -> typing.Any:
        ...
    def forward_packed(self, x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], cu_seqlens: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], positions: typing.Annotated[numpy.typing.ArrayLike, numpy.int64] | None, mask: EncoderMask, num_threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def forward_padded(self, x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], cu_seqlens: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], positions: typing.Annotated[numpy.typing.ArrayLike, numpy.int64] | None, mask: EncoderMask, num_threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
        ...
    def layer_state(self, index: typing.SupportsInt | typing.SupportsIndex) -> dict:
        ...
    @property
    def num_layers(self) -> int:
        ...
def activation_f32(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], activation: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    Vector activation of the selected ISA (1 relu, 2 gelu erf, 3 gelu tanh), for tests.
    """
def attention_packed_f32(q: numpy.ndarray, k: numpy.ndarray, v: numpy.ndarray, cu_seqlens: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], positions: typing.Annotated[numpy.typing.ArrayLike, numpy.int64] | None, heads: typing.SupportsInt | typing.SupportsIndex, head_dim: typing.SupportsInt | typing.SupportsIndex, scale: typing.SupportsFloat | typing.SupportsIndex, keep: numpy.ndarray | None, bias: numpy.ndarray | None, causal: bool, window_left: typing.SupportsInt | typing.SupportsIndex, window_right: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex) -> numpy.typing.NDArray[numpy.float32]:
    """
    Attention over packed tokens (rows of q, k, v); see padfree.attention.
    """
def attention_padded_f32(q: numpy.ndarray, k: numpy.ndarray, v: numpy.ndarray, out: numpy.ndarray, lengths: typing.Annotated[numpy.typing.ArrayLike, numpy.int64], scale: typing.SupportsFloat | typing.SupportsIndex, keep: numpy.ndarray | None, bias: numpy.ndarray | None, causal: bool, window_left: typing.SupportsInt | typing.SupportsIndex, window_right: typing.SupportsInt | typing.SupportsIndex, num_threads: typing.SupportsInt | typing.SupportsIndex, zero_padding: bool = False) -> None:
    """
    Attention read in place from padded (B, H, L, Dh) arrays whose padding is a suffix.
    """
def cpu_info() -> dict:
    ...
def erf_f32(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
    """
    Vector erf of the selected ISA, for tests.
    """
def exp_f32(x: typing.Annotated[numpy.typing.ArrayLike, numpy.float32]) -> numpy.typing.NDArray[numpy.float32]:
    """
    Vectorised exp of the selected ISA (for tests of its error bound).
    """
def get_isa() -> str:
    ...
def layer_norm_f32(x: numpy.ndarray, residual: numpy.ndarray | None, gamma: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], beta: typing.Annotated[numpy.typing.ArrayLike, numpy.float32], eps: typing.SupportsFloat | typing.SupportsIndex, out: numpy.ndarray, num_threads: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def masked_softmax_f32(scores: numpy.ndarray, out: numpy.ndarray, lengths: numpy.ndarray | None, keep: numpy.ndarray | None, bias: numpy.ndarray | None, num_threads: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def masked_softmax_f64(scores: numpy.ndarray, out: numpy.ndarray, lengths: numpy.ndarray | None, keep: numpy.ndarray | None, bias: numpy.ndarray | None, num_threads: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def set_isa(name: str) -> None:
    ...
