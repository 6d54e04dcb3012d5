"""The pretrained EfficientNet-Lite0: weights map one-to-one, classify, and give the declared maps."""
import numpy as np
import pytest
import skimage.data
import torch

from models.encoder import (MODEL_CARD, Encoder, WeightMappingError, centre_crop_224, create_network, load_classifier,
                            load_source_state_dict, map_state_dict, normalize)

ESPRESSO = 967


def test_classifier_sees_espresso_in_coffee():
    with torch.inference_mode():
        probs = load_classifier()(normalize(centre_crop_224(skimage.data.coffee()))).softmax(1)[0]
    assert int(probs.argmax()) == ESPRESSO
    assert float(probs[ESPRESSO]) > 0.8


@pytest.mark.parametrize("height, width", [(64, 96), (512, 512)])
def test_feature_maps_have_declared_channels_and_strides(height, width):
    encoder = Encoder.pretrained()
    assert encoder.channels == tuple(MODEL_CARD["features"]["channels"]) == (24, 40, 112, 320)
    assert encoder.strides == (4, 8, 16, 32)
    image = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    with torch.inference_mode():
        maps = encoder(normalize(image))
    assert [tuple(m.shape) for m in maps] == [(1, c, height // s, width // s)
                                              for c, s in zip(encoder.channels, encoder.strides)]
    assert all(torch.isfinite(m).all() for m in maps)


def test_grey_image_is_repeated_to_three_channels():
    grey = np.random.default_rng(1).integers(0, 256, (8, 8), dtype=np.uint8)
    x = normalize(grey)
    assert x.shape == (1, 3, 8, 8)
    assert torch.equal(x, normalize(np.repeat(grey[:, :, None], 3, axis=2)))
    assert torch.equal(x, normalize(grey[:, :, None]))


@pytest.fixture(scope="module")
def source_and_target():
    return load_source_state_dict(), create_network().state_dict()


def test_mapping_uses_every_tensor_once(source_and_target):
    source, target = source_and_target
    mapped = map_state_dict(source, target)
    assert mapped.keys() == target.keys()
    assert len({id(t) for t in mapped.values()}) == len(source)


def test_mapping_fails_when_a_source_tensor_is_missing(source_and_target):
    source, target = source_and_target
    tampered = dict(source)
    del tampered["_blocks.5._bn1.running_var"]
    with pytest.raises(WeightMappingError, match=r"blocks\.3\.0\.bn2\.running_var: no source tensor"):
        map_state_dict(tampered, target)


def test_mapping_fails_when_a_source_tensor_has_the_wrong_shape(source_and_target):
    source, target = source_and_target
    tampered = dict(source)
    tampered["_blocks.7._depthwise_conv.weight"] = torch.zeros(480, 1, 5, 5)
    with pytest.raises(WeightMappingError, match=r"blocks\.3\.2\.conv_dw\.weight \(480, 1, 3, 3\) <- .* shape differs"):
        map_state_dict(tampered, target)
