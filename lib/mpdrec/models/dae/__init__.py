"""The playlist autoencoder (Mult-DAE), trained with Horovod: `train.train_on_rank`."""
