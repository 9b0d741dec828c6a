"""What the report reads from disk: benchmark times and headline metrics (hand-made files)."""
from __future__ import annotations

from fmwsss.report.collect import background_shares, bench_seconds, headline, scored_on, split_name

TSV_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_bench_seconds_sums_the_jobs_of_one_entry(tmp_path):
    shards = tmp_path / "benchmarks/seeds_fine/abc"
    shards.mkdir(parents=True)
    (shards / "shard-000.tsv").write_text(TSV_HEADER + "1.5\t0:00:01\t1\t1\t1\t1\t0\t0\t0\t1\n")
    (shards / "shard-001.tsv").write_text(TSV_HEADER + "2.25\t0:00:02\t1\t1\t1\t1\t0\t0\t0\t2\n")
    (tmp_path / "benchmarks/deeplab_train").mkdir(parents=True)
    (tmp_path / "benchmarks/deeplab_train/def.tsv").write_text(TSV_HEADER + "10\t0:00:10\t1\t1\t1\t1\t0\t0\t0\t9\n")
    assert bench_seconds(tmp_path, "seeds_fine", "abc") == 3.75
    assert bench_seconds(tmp_path, "deeplab_train", "def") == 10.0
    assert bench_seconds(tmp_path, "seeds_fine", "other") is None
    assert bench_seconds(tmp_path, "sam_masks", "abc") is None


def test_headline_per_stage_kind():
    assert headline("seeds_fine", {"ground_truth": True, "miou": 0.5}) == {"mIoU": 0.5}
    assert headline("seeds_fine", {"ground_truth": False}) == {}
    cams = {"cam_raw": {"ground_truth": True, "miou": 0.2}, "cam_caa": {"ground_truth": True, "miou": 0.3}}
    assert headline("cams_fine_dump", cams) == {"raw mIoU": 0.2, "caa mIoU": 0.3}
    assert headline("deeplab_eval", {"miou": {"single_scale": 0.4, "ms_flip": 0.45}}) == {
        "single_scale mIoU": 0.4, "ms_flip mIoU": 0.45}
    assert headline("sam_masks", None) == {}


def test_scored_on_names_the_split_and_the_images_scored():
    seeds = {"ground_truth": True, "miou": 0.05, "num_images": 24,
             "split": "demo: all (24 images with ground truth)"}
    assert scored_on("seeds_fine", seeds) == ("all", 24)
    cams = {"cam_raw": {"ground_truth": True, "num_images": 20, "split": "voc: train (20 images with ground truth)"},
            "cam_caa": {"ground_truth": True, "num_images": 20, "split": "voc: train (20 images with ground truth)"}}
    assert scored_on("cams_coarse_dump", cams) == ("train", 20)
    segmenter = {"split": "demo: val", "num_images": 9, "num_scored": 8, "miou": {"single_scale": 0.1}}
    assert scored_on("deeplab_eval", segmenter) == ("val", 8)  # the 8 with ground truth, not the 9 predicted
    assert scored_on("seeds_fine", {"ground_truth": False, "split": "coco: val2014"}) is None
    assert scored_on("deeplab_eval", {**segmenter, "num_scored": 0}) is None
    assert scored_on("sam_masks", None) is None


def test_split_name_drops_the_dataset_and_the_note():
    assert split_name("demo: all (24 images with ground truth)") == "all"
    assert split_name("demo_pretrained: val") == "val"


def test_background_shares_of_predictions_and_of_ground_truth():
    confusion = [[50, 10, 0],  # GT background: 60 pixels
                 [30, 5, 0],  # GT class 1: 35
                 [5, 0, 0]]  # GT class 2: 5
    assert background_shares(confusion) == (85 / 100, 60 / 100)
    assert background_shares([[0, 0], [0, 0]]) is None
