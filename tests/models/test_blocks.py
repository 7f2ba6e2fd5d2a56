import pytest
import torch

from flt3d.models import FLTNet, ImageClassifier, PointCloudClassifier, SequenceModel
from flt3d.models.blocks import BlockModel, block_stack
from flt3d.nn import set_attention

CONFIG = dict(hidden_channels=8, num_layers=2, heads=2, num_features=8, num_frequencies=4)


def test_block_stack_reads_the_config():
    blocks = block_stack(
        {**CONFIG, "length_scale": 0.5, "cutoff": 3.0, "spectral_filter": True, "unused": 1},
        pos_dim=3,
        spectrum="isotropic_mixture",
    )
    assert len(blocks) == 2 and blocks[0].channels == 8
    conv = blocks[1].conv
    assert conv.heads == 2 and conv.attn.pos_dim == 3 and conv.attn.num_features == 8
    assert conv.attn.cutoff == 3.0 and conv.filter.cutoff == 3.0


def test_block_stack_cutoff_without_rpe_and_options_on_top():
    config = {**CONFIG, "cutoff": 2.0, "spectral_filter": True, "filter_spectrum": None}
    blocks = block_stack(config, pos_dim=3, spectrum=None, filter_spectrum="radial_basis")
    conv = blocks[0].conv
    assert conv.attn.cutoff is None  # no RPE: no short range in the attention
    assert conv.filter.cutoff == 2.0 and conv.filter_spectrum == "radial_basis"
    causal = block_stack(CONFIG, pos_dim=1, spectrum="local", causal=True)
    assert causal[0].conv.attn.causal and causal[0].conv.attn.pos_dim == 1


@pytest.mark.parametrize(
    "model",
    [
        lambda: FLTNet(**CONFIG),
        lambda: ImageClassifier(**CONFIG),
        lambda: SequenceModel(5, **CONFIG),
        lambda: PointCloudClassifier(3, **CONFIG),
    ],
)
def test_block_model_attention_and_reset(model):
    model = model()
    assert isinstance(model, BlockModel)
    for mode in ("exact", "linear"):
        set_attention(model, mode)
        assert model.attention == mode
    weight = model.blocks[1].mlp[0].weight
    before, norm = weight.detach().clone(), model.norm.weight
    with torch.no_grad():
        norm.fill_(3.0)
    model.reset_blocks()
    assert not torch.equal(weight, before) and torch.equal(norm, torch.ones_like(norm))
