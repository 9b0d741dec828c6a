"""Sanity: the tiny DeepLab, augmentation off, overfits 4 real VOC images with their ground-truth labels."""
from __future__ import annotations

import cv2
import pytest
from PIL import Image

from fmwsss.data.images import load_rgb
from fmwsss.data.palette import load_label_png, palette_for, save_label_png
from fmwsss.eval import Accumulator
from fmwsss.segmentation.infer import predict
from fmwsss.segmentation.models import load_segmenter
from fmwsss.segmentation.train import train_segmenter

IDS = ("2007_000039", "2007_005626", "2007_004768", "2007_009807")  # tvmonitor, train, sofa, horse: large objects
SIDE = 96  # long side after resizing; the tiny model runs at output stride 8 (12 x 12 features)
ITERATIONS = 150  # batch 4 = all four images per step; ~60-70 s on one CPU core, mIoU ~0.92


@pytest.mark.slow
def test_tiny_overfits_four_voc_images(voc_sample, tmp_path):
    items = []
    for image_id in IDS:
        rgb = load_rgb(voc_sample / "JPEGImages" / f"{image_id}.jpg")
        label = load_label_png(voc_sample / "SegmentationClass" / f"{image_id}.png")
        h, w = label.shape
        size = (round(w * SIDE / max(h, w)), round(h * SIDE / max(h, w)))
        Image.fromarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)).save(tmp_path / f"{image_id}.png")
        save_label_png(tmp_path / f"{image_id}_gt.png", cv2.resize(label, size, interpolation=cv2.INTER_NEAREST),
                       palette_for(20))
        items.append((image_id, tmp_path / f"{image_id}.png", tmp_path / f"{image_id}_gt.png"))
    settings = {"arch": "tiny", "pretrained_backbone": False, "crop": SIDE, "scale_range": [1.0, 1.0],
                "flip": False, "color_jitter": 0.0, "batch_size": 4, "iterations": ITERATIONS, "lr": 0.1,
                "backbone_lr_mult": 1.0, "momentum": 0.9, "weight_decay": 0.0, "poly_power": 0.9, "seed": 0,
                "optimizer": "sgd", "grad_clip": None, "mask2former": {"precision": "fp32"}}
    model_path = train_segmenter(items, settings, 21, tmp_path / "model.pt", tmp_path / "work", log=lambda s: None,
                                 checkpoint_every=ITERATIONS)
    model, _ = load_segmenter(model_path)
    acc = Accumulator(21)
    for image_id, image_path, gt_path in items:
        acc.add(predict(model, load_rgb(image_path)), load_label_png(gt_path), image_id)
    metrics = acc.metrics()  # mIoU over the classes present in GT or prediction
    assert metrics.miou >= 0.9, f"training mIoU {metrics.miou:.3f}, per class {metrics.iou}"
