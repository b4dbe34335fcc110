"""UPS: Unified Pose Sequence Modeling (Foo et al., CVPR 2023) for the Hugging Face stack.

Importing the package registers UPS with the Auto classes (AutoConfig, AutoModel, AutoModelForSeq2SeqLM,
AutoFeatureExtractor, AutoTokenizer, AutoProcessor) and the ``pose-sequence-modeling`` pipeline, and marks
each class for ``register_for_auto_class`` so ``save_pretrained`` writes ``auto_map`` and copies the code.
"""

from transformers import AutoConfig

from .configuration_ups import UPS_TASKS, UPSConfig
from .skeletons import LAYOUTS, MODEL_LAYOUTS, SkeletonLayout, convert_layout, get_layout

AutoConfig.register("ups", UPSConfig)
UPSConfig.register_for_auto_class()

# --- model registration (modeling_ups.py) ---
from transformers import AutoModel, AutoModelForSeq2SeqLM  # noqa: E402

from .modeling_ups import (  # noqa: E402
    UPSEncoderOutput,
    UPSForPoseSequenceModeling,
    UPSModel,
    UPSPreTrainedModel,
    UPSSeq2SeqLMOutput,
    UPSTaskConstrainedLogitsProcessor,
)

AutoModel.register(UPSConfig, UPSForPoseSequenceModeling)
AutoModelForSeq2SeqLM.register(UPSConfig, UPSForPoseSequenceModeling)
UPSForPoseSequenceModeling.register_for_auto_class("AutoModel")

# --- processor registration (feature_extraction_ups.py, tokenization_ups.py, processing_ups.py) ---
from transformers import AutoFeatureExtractor, AutoProcessor, AutoTokenizer  # noqa: E402

from .feature_extraction_ups import UPSFeatureExtractor  # noqa: E402
from .processing_ups import UPSProcessor  # noqa: E402
from .tokenization_ups import UPSTokenizer  # noqa: E402

AutoFeatureExtractor.register(UPSConfig, UPSFeatureExtractor)
AutoTokenizer.register(UPSConfig, tokenizer_class=UPSTokenizer)
AutoProcessor.register(UPSConfig, UPSProcessor)
UPSFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")
UPSTokenizer.register_for_auto_class("AutoTokenizer")
UPSProcessor.register_for_auto_class("AutoProcessor")

# --- pipeline registration (pipeline_ups.py) ---
from transformers.pipelines import PIPELINE_REGISTRY  # noqa: E402

from .pipeline_ups import PoseSequenceModelingPipeline  # noqa: E402

# `pt_model` must name a transformers class: `custom_pipelines` in a saved config.json stores its name, which the
# loading side resolves with `getattr(transformers, name)`.
PIPELINE_REGISTRY.register_pipeline(
    "pose-sequence-modeling", pipeline_class=PoseSequenceModelingPipeline, pt_model=AutoModel, type="multimodal"
)

__version__ = "0.3.0"
