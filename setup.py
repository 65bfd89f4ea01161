"""Package `mpdrec` from lib/, with every dependency pinned.

Horovod is an extra because it must be compiled *after* TensorFlow is installed and without
build isolation; `scripts/bootstrap_venv.sh` does that second step (see README.md).
"""
from setuptools import find_packages, setup

RUNTIME = [
    "pyspark==3.5.3",
    "tensorflow-cpu==2.15.1",
    "numpy==1.26.4",
    "pandas==2.2.3",
    "pyarrow==16.1.0",
    "orjson==3.10.7",
    "msgspec==0.19.0",
    "PyYAML==6.0.2",
    "matplotlib==3.8.4",  # PNG plots of training curves and reports
    # the learning-to-rank blend (xgboost.spark.SparkXGBRanker); -cpu: the same package without the
    # CUDA/NCCL wheels. scipy, scikit-learn and cloudpickle are what xgboost's Spark estimator imports.
    "xgboost-cpu==3.2.0",
    "scipy==1.17.1",
    "scikit-learn==1.7.2",
    "cloudpickle==3.1.3",
]

setup(
    name="mpdrec",
    version="0.1.0",
    description="Batch recommender for the Spotify Million Playlist Dataset (RecSys Challenge 2018)",
    # conf/ ships inside the package as mpdrec/conf: a cluster job has no checkout to read it from.
    package_dir={"": "lib", "mpdrec.conf": "conf"},
    packages=[*find_packages("lib"), "mpdrec.conf"],
    package_data={"mpdrec": ["py.typed"], "mpdrec.conf": ["*.yaml"]},
    python_requires=">=3.10,<3.12",
    install_requires=RUNTIME,
    extras_require={
        # Built by scripts/bootstrap_venv.sh with --no-build-isolation after TensorFlow.
        "horovod": ["horovod==0.28.1"],
        # implicit: the single-machine reference for implicit ALS in scripts/bench_als.py (not used by the product).
        # ruff, mypy and the stubs mypy reads: the lint and type checks of scripts/lint.sh.
        "dev": [
            "pytest==8.3.3",
            "pytest-timeout==2.3.1",
            "cmake==3.30.5",
            "implicit==0.7.2",
            "venv-pack==0.2.0",
            "ruff==0.17.6",
            "mypy==1.19.1",
            "pandas-stubs==2.2.3.241126",
            "types-PyYAML==6.0.12.20240917",
        ],
    },
)
