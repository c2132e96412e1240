"""Titles, axis labels and landmarks from a surface file's attributes."""
from landscape.plot.labels import describe_surface, pc_labels, short_name


def test_random_directions_title_names_model_data_checkpoint_and_hyperparameters():
    text = describe_surface({"model": "convnet", "dataset": "digits", "checkpoint": "runs/bs32/model.pt",
                             "mode": "random", "norm": "filter", "meta_batch_size": 32,
                             "meta_weight_decay": 0.0005, "meta_test_acc": 0.967})
    assert text.title.splitlines() == ["convnet on digits, batch 32, wd 0.0005, test err 3.3%",
                                       "bs32/model.pt, filter-normalized random directions"]
    assert text.landmarks == [((0.0, 0.0), "bs32")]
    assert text.titled("train_loss").startswith("train loss")


def test_interpolation_marks_both_checkpoints_and_drops_one_sided_hyperparameters():
    text = describe_surface({"model": "convnet", "dataset": "digits", "checkpoint": "a/small/model.pt",
                             "ckpt2": "a/large/model.pt", "mode": "line", "meta_batch_size": 32})
    assert "batch" not in text.title and "interpolation small → large" in text.title
    assert text.landmarks == [((0.0, 0.0), "small"), ((1.0, 0.0), "large")]
    assert "0: small" in text.xlabel and "1: large" in text.xlabel


def test_plane_and_trajectory_and_empty_attrs():
    plane = describe_surface({"checkpoint": "a.pt", "ckpt2": "b.pt", "ckpt3": "c.pt", "mode": "plane"})
    assert [label for _, label in plane.landmarks] == ["a", "b", "c"]
    assert plane.landmarks[2][0] == (0.0, 1.0)
    traj = describe_surface({"checkpoint": "run/final.pt", "trajectory_x": "[0.1, 0.2]",
                             "explained_variance": "[0.9, 0.05]"})
    assert "90.0%" in traj.xlabel and "5.0%" in traj.ylabel
    assert describe_surface({}).title == ""
    assert short_name("x/y/sgd_bs4096.pt") == "sgd_bs4096"
    assert pc_labels(None) == ("1st PC", "2nd PC")


def test_trajectory_keys_read_from_a_direction_file_are_found_under_their_dir_prefix():
    # `landscape plot --dir-file trajectory_directions.h5` stores the file's attrs as dir_*
    text = describe_surface({"checkpoint": "run/final.pt", "mode": "custom", "direction_file": "run/traj.h5",
                             "dir_trajectory_x": "[0.1, 0.2]", "dir_explained_variance": "[0.8, 0.15]"})
    assert "80.0%" in text.xlabel and "15.0%" in text.ylabel
    assert "PCA of the training trajectory" in text.title


def test_hessian_figures_say_which_samples_the_hessian_used():
    text = describe_surface({"model": "convnet", "dataset": "digits", "eig_samples": 2000, "eig_split": "train"})
    assert text.hessian_titled("convexity") == "convexity — convnet on digits; Hessian on 2,000 train samples"
    assert describe_surface({}).hessian_titled("convexity") == "convexity"
