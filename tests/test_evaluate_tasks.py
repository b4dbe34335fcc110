"""The pose-estimation evaluation compares each prediction with the frames the model predicts: K target frames per
window from the window's first target frame, the recording's last frame repeated beyond its end (as the windows
repeat it)."""

import numpy as np

from modeling_ups.skeletons import get_layout
from modeling_ups.training.evaluate_tasks import _pose_targets


def test_pose_targets_take_k_frames_from_the_start_and_repeat_the_last():
    layout = get_layout("humaneva15")
    frames, joints = 6, layout.num_joints
    poses = np.random.default_rng(0).normal(size=(frames, 1, joints, 3)).astype(np.float32)  # stored (T, M, J, C)
    row = {"poses": poses}
    targets = _pose_targets([row, row], [1, 4], "humaneva15", num_frames=3)
    assert targets.shape == (2, 3, joints, 3)
    for sample, picked in enumerate(([1, 2, 3], [4, 5, 5])):
        expected = poses[picked, 0]
        np.testing.assert_allclose(targets[sample], expected - layout.root_position(expected), rtol=1e-6)
    single = _pose_targets([row], [2], "humaneva15")
    np.testing.assert_allclose(single, targets[:1, 1:2])  # K = 1 is the start frame


def test_recordings_shorter_than_the_predicted_frames_are_windowed():
    """A recording shorter than the K frames a model predicts per clip cannot be given whole: it is cut into an
    edge-padded window like a long one; a K = 1 model takes it whole, as before."""
    from types import SimpleNamespace

    from modeling_ups.training.data import WindowIndex, cut_into_windows

    def processor(k):
        return SimpleNamespace(pose_estimation_target_frames=k,
                               target_frame_indices=lambda n: np.arange((n - 1) // 2, (n - 1) // 2 + k))

    assert [cut_into_windows(n, 27, processor(5)) for n in (2, 5, 27, 28)] == [True, False, False, True]
    assert [cut_into_windows(n, 27, processor(1)) for n in (1, 2, 27, 28)] == [False, False, False, True]
    assert not cut_into_windows(2, None, processor(5))
    index = WindowIndex.build(processor(5), [2, 9], stride=5, window=27)
    assert index.rows.tolist() == [0, 1] and index.centres.tolist() == [0, 4]
