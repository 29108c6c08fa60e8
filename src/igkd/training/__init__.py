"""Training: the loop, augmentation, the teacher, the students and their distillation methods."""
