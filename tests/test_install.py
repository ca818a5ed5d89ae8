"""The install script is idempotent: a second run changes nothing."""
import subprocess

from conftest import REPO


def test_second_install_is_a_no_op():
    stamp = REPO / '.venv/.lomar_transfer_installed'
    before = stamp.stat().st_mtime_ns
    out = subprocess.run(['bash', 'tools/install.sh'], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'up to date' in out.stdout
    assert stamp.stat().st_mtime_ns == before


def test_mmcv_compiled_ops_give_right_answers():
    import torch
    import torchvision
    from mmcv.ops import nms, roi_align
    boxes = torch.tensor([[0., 0., 10., 10.], [1., 1., 10., 10.], [20., 20., 30., 30.]])
    dets, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
    feats = torch.randn(2, 4, 16, 16)
    rois = torch.tensor([[0, 1.5, 2., 9., 12.], [1, 0., 0., 15., 15.]])
    ours = roi_align(feats, rois, (7, 7), 0.5, 2, 'avg', True)
    ref = torchvision.ops.roi_align(feats, rois, (7, 7), 0.5, 2, aligned=True)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-4)
