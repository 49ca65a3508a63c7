"""Parameter counts: the closed form against measured counts of `Recurrent` and torch.nn's own modules."""

from __future__ import annotations

import itertools
from fractions import Fraction

import pytest
from torch import nn

from rnnbench.models.params import count_parameters, recurrent_parameter_count
from rnnbench.models.recurrent import Recurrent

TORCH_NN: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
GRID = list(itertools.product(["rnn", "lstm", "gru", "peephole_lstm"], [3, 7], [4, 9], [1, 3], [False, True]))


@pytest.mark.parametrize(("cell", "input_size", "hidden", "layers", "bidi"), GRID)
def test_analytic_matches_recurrent_and_torch_nn(
    cell: str, input_size: int, hidden: int, layers: int, bidi: bool
) -> None:
    """The formula equals count_parameters(Recurrent) and, where one exists, count_parameters(torch.nn.*)."""
    analytic = recurrent_parameter_count(cell, input_size, hidden, layers, bidi)
    model = Recurrent(cell, input_size, hidden, num_layers=layers, bidirectional=bidi, impl="custom")
    assert count_parameters(model) == analytic
    if cell in TORCH_NN:
        reference = TORCH_NN[cell](input_size, hidden, layers, bidirectional=bidi)
        assert count_parameters(reference) == analytic


@pytest.mark.parametrize(("input_size", "hidden", "expected"), [(1, 1, 16), (3, 4, 144), (10, 20, 2560)])
def test_lstm_formula_explicit_numbers(input_size: int, hidden: int, expected: int) -> None:
    """Single-layer LSTM, 4*(H*(I+H) + 2H), against hand-computed numbers (I=3, H=4: 4*(28 + 8) = 144)."""
    assert recurrent_parameter_count("lstm", input_size, hidden) == expected


def test_rnn_relu_counts_like_rnn() -> None:
    """The ReLU Elman RNN has the same parameters as the tanh one."""
    assert (
        recurrent_parameter_count("rnn_relu", 5, 6, 2)
        == recurrent_parameter_count("rnn", 5, 6, 2)
        == (6 * 11 + 12) + (6 * 12 + 12)
    )


@pytest.mark.parametrize(
    ("input_size", "hidden", "layers", "bidi"), [(3, 4, 1, False), (16, 64, 2, True), (7, 9, 3, False)]
)
def test_gru_is_exactly_three_quarters_of_lstm(input_size: int, hidden: int, layers: int, bidi: bool) -> None:
    """GRU/LSTM parameter ratio is exactly 3/4 (3 gates vs 4) at equal sizes.

    The seed claims GRUs have "30-50% fewer" parameters than LSTMs; with torch.nn's parametrisation (both keep
    two bias vectors per gate) the saving is exactly 25%, so that range overstates it.
    """
    gru = recurrent_parameter_count("gru", input_size, hidden, layers, bidi)
    lstm = recurrent_parameter_count("lstm", input_size, hidden, layers, bidi)
    assert Fraction(gru, lstm) == Fraction(3, 4)
    measured = count_parameters(nn.GRU(input_size, hidden, layers, bidirectional=bidi))
    assert Fraction(measured, count_parameters(nn.LSTM(input_size, hidden, layers, bidirectional=bidi))) == Fraction(
        3, 4
    )


@pytest.mark.parametrize(("cell", "gates"), [("rnn", 1), ("lstm", 4), ("gru", 3), ("peephole_lstm", 4)])
def test_bidirectional_doubles_layer_zero(cell: str, gates: int) -> None:
    """Bidirectional exactly doubles a one-layer stack; deeper layers add G*H^2 more per direction (2H inputs)."""
    i, h = 5, 6
    assert recurrent_parameter_count(cell, i, h, 1, True) == 2 * recurrent_parameter_count(cell, i, h, 1, False)
    two_bi, two_uni = recurrent_parameter_count(cell, i, h, 2, True), recurrent_parameter_count(cell, i, h, 2, False)
    assert two_bi - 2 * two_uni == 2 * gates * h * h


@pytest.mark.parametrize(("hidden", "layers", "bidi"), [(4, 1, False), (5, 3, False), (6, 2, True)])
def test_peephole_adds_three_h_per_layer_direction(hidden: int, layers: int, bidi: bool) -> None:
    """Peephole LSTM = LSTM + 3H per layer and direction (three diagonal peephole vectors)."""
    dirs = 2 if bidi else 1
    extra = recurrent_parameter_count("peephole_lstm", 3, hidden, layers, bidi) - recurrent_parameter_count(
        "lstm", 3, hidden, layers, bidi
    )
    assert extra == 3 * hidden * layers * dirs
    model = Recurrent("peephole_lstm", 3, hidden, num_layers=layers, bidirectional=bidi)
    peep = sum(p.numel() for n, p in model.named_parameters() if n.startswith("weight_p"))
    assert peep == extra


def test_per_layer_sizes() -> None:
    """A per-layer hidden_size list counts each layer with its own H and the previous layer's width as input."""
    sizes = [12, 12, 8]
    model = Recurrent("gru", 5, sizes, bidirectional=True)
    expected = 2 * (3 * (12 * (5 + 12) + 24) + 3 * (12 * (24 + 12) + 24) + 3 * (8 * (24 + 8) + 16))
    assert recurrent_parameter_count("gru", 5, sizes, bidirectional=True) == count_parameters(model) == expected


def test_count_parameters_counts_only_trainable() -> None:
    """Freezing a tensor removes exactly its elements from the trainable count."""
    model = nn.LSTM(3, 4)
    total = count_parameters(model)
    model.weight_hh_l0.requires_grad_(False)
    assert count_parameters(model) == total - 4 * 4 * 4


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"cell": "tcn", "input_size": 3, "hidden_size": 4}, "cell: unknown cell 'tcn'; allowed: gru, lstm"),
        ({"cell": "lstm", "input_size": 0, "hidden_size": 4}, "input_size must be a positive int"),
        ({"cell": "lstm", "input_size": 3, "hidden_size": 0}, "hidden_size must be a positive int"),
        ({"cell": "lstm", "input_size": 3, "hidden_size": 4, "num_layers": 0}, "num_layers must be a positive int"),
    ],
)
def test_bad_arguments(kwargs: dict, match: str) -> None:
    """Bad arguments raise ValueError naming the argument."""
    with pytest.raises(ValueError, match=match):
        recurrent_parameter_count(**kwargs)
