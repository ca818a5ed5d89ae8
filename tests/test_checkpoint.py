"""Local checkpoints: mmengine training checkpoints load, code-running pickles are refused."""
import os
import pickle

import pytest
import torch
from mmengine.logging import MessageHub
from mmengine.runner.checkpoint import CheckpointLoader

from lomar_transfer.fileio import load_local_checkpoint


class RunsCode:

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f'touch {self.path}', ))


def test_mmengine_training_state_loads(tmp_path):
    hub = MessageHub.get_instance('ckpt-test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', 0.5)
    path = tmp_path / 'iter_1.pth'
    torch.save(dict(state_dict={'w': torch.ones(2)}, message_hub=hub.state_dict(),
                    meta=dict(seed=0, dataset_meta=dict(classes=('a', 'b')))), path)
    with pytest.raises(pickle.UnpicklingError):  # what plain torch.load does with it
        torch.load(path)
    ckpt = CheckpointLoader.load_checkpoint(str(path))  # mmengine's path for local files
    torch.testing.assert_close(ckpt['state_dict']['w'], torch.ones(2))
    restored = MessageHub.get_instance('ckpt-test-restored')
    restored.load_state_dict(ckpt['message_hub'])
    assert restored.get_scalar('train/loss').mean() == pytest.approx(1.0)


def test_code_in_checkpoint_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save({'state_dict': {}, 'x': RunsCode(marker)}, path)
    with pytest.raises(pickle.UnpicklingError, match='system'):
        load_local_checkpoint(path)
    assert not marker.exists()


def test_missing_checkpoint_names_the_file(tmp_path):
    """Our message, not mmengine's ('... can not be found.'), through every entry point: the
    loader registered for local paths (what Runner's load_from / resume / test use) and
    ``init_cfg=Pretrained``."""
    from mmengine.runner.checkpoint import load_checkpoint

    from lomar_transfer.fileio import MissingCheckpointError
    from lomar_transfer.models.backbones.pretrained import load_pretrained_backbone
    from lomar_transfer.models import VisionTransformer
    missing = str(tmp_path / 'nope.pth')
    for load in (lambda: CheckpointLoader.load_checkpoint(missing),
                 lambda: load_checkpoint(torch.nn.Linear(1, 1), missing)):
        with pytest.raises(MissingCheckpointError) as err:
            load()
        assert str(err.value) == f'{missing}: not found: check the path'
        assert isinstance(err.value, FileNotFoundError)  # for callers that catch that
    with pytest.raises(MissingCheckpointError) as err:
        CheckpointLoader.load_checkpoint(str(tmp_path))
    assert str(err.value) == f'{tmp_path}: is a directory, not a checkpoint file'
    vit = VisionTransformer(arch=dict(embed_dims=32, depth=1, num_heads=2, mlp_hidden_dims=64),
                            img_size=32, patch_size=8)
    with pytest.raises(MissingCheckpointError) as err:
        load_pretrained_backbone(vit, missing)
    assert str(err.value) == (f'{missing}: not found: check the path '
                              '(model.backbone.init_cfg.checkpoint)')
