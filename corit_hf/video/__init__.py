"""Videos and faces: frame sampling with PyAV, MTCNN face crops, and the model inputs made from them."""
