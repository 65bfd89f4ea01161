"""Neural collaborative filtering (He et al. 2017; NNCF): models, and (next) Horovod training."""
