"""CLIP CAMs: the CLIP wrapper, Softmax-Grad-CAM, CAA refinement, CAM shards and the dump stage."""
from fmwsss.cams.caa import COARSE, FINE, CaaSettings, affinity, box_mask, cam_score, refine
from fmwsss.cams.clip_wrapper import ClipCam, ImageOutput, preprocess_native
from fmwsss.cams.gradcam import CamBatch, masked_softmax, softmax_gradcam
from fmwsss.cams.shards import CamRecord, CamShardError, CamShardReader, CamShardWriter

__all__ = ["COARSE", "FINE", "CaaSettings", "affinity", "box_mask", "cam_score", "refine", "ClipCam",
           "ImageOutput", "preprocess_native", "CamBatch", "masked_softmax", "softmax_gradcam", "CamRecord",
           "CamShardError", "CamShardReader", "CamShardWriter"]
