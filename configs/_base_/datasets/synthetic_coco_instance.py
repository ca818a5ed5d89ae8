# COCO instance segmentation with mmdet's stock CocoDataset, pipeline and CocoMetric (bbox + segm),
# on the embedded mini-COCO (`python tools/make_synthetic_data.py`). For real COCO set
# data_root='data/coco/', remove `metainfo` (the 80 COCO classes) and the smaller scale below.
_base_ = 'mmdet::_base_/datasets/coco_instance.py'

# root: $LOMAR_DATA_ROOT, else data/synthetic (set by tools/benchmark.py --data-root)
data_root = '{{$LOMAR_DATA_ROOT:data/synthetic}}/coco/'
# Same names/ids as in COCO; lomar_transfer.datasets.synthetic.COCO_CLASSES (a test keeps them equal).
metainfo = dict(classes=('stop sign', 'frisbee', 'sports ball', 'kite', 'tv'))  # id order
img_scale = (192, 192)  # synthetic images are 160-320 px: CPU-sized (objects stay >= 14 px)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator
