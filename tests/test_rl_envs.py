"""Reinforcement-learning task families and episode videos: navigation2d's dynamics and rewards against a hand
computation, the cheetahs' rewards from MuJoCo's x positions, seeding, task validation and parsing, the vector
environment's layout, rendering, and GIF/MP4 writing."""

from __future__ import annotations

import ctypes.util
import importlib
import math
import sys

import numpy as np
import pytest
from PIL import Image

import polyskill.rl
from polyskill.errors import ConfigError
from polyskill.rl.envs import ENVIRONMENTS, family
from polyskill.rl.envs.navigation import to_pixel
from polyskill.rl.video import write_video

NAV_GOALS = [{"goal_x": 0.3, "goal_y": -0.2}, {"goal_x": -0.45, "goal_y": 0.05}]


@pytest.fixture
def cheetah(tmp_path, monkeypatch):
    """Skips without MuJoCo; runs in tmp_path so that a MuJoCo warning's MUJOCO_LOG.TXT stays out of the tree."""
    pytest.importorskip("mujoco")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _family(name: str, horizon: int | None = None):
    if name.startswith("halfcheetah"):
        pytest.importorskip("mujoco")
    return family(name, horizon)


# --- navigation2d ------------------------------------------------------------------------------------------------


def test_navigation_clips_moves_rewards_and_terminates_as_computed_by_hand():
    venv = family("navigation2d", horizon=4).vector_env(NAV_GOALS, episodes=2)  # goals 0, 0, 1, 1
    obs, _ = venv.reset(seed=[11, 12, 13, 14])
    assert obs.shape == (4, 2) and obs.dtype == np.float32 and not obs.any()
    actions = [
        [[1.0, -1.0], [0.05, 0.02], [-0.3, 0.0], [0.0, 0.0]],
        [[0.1, -5.0], [0.05, 0.02], [-0.3, 0.08], [0.0, 0.0]],
        [[0.1, 0.0], [-0.2, 0.3], [-0.3, -0.03], [0.0, 0.0]],
        [[9.0, 9.0], [0.0, 0.0], [-0.3, 0.0], [0.0, 0.0]],  # sub-env 0 has terminated: it stays put
    ]
    # positions after each step, worked out by hand: every axis clipped to [-0.1, 0.1], then added
    positions = [
        [(0.1, -0.1), (0.05, 0.02), (-0.1, 0.0), (0.0, 0.0)],
        [(0.2, -0.2), (0.1, 0.04), (-0.2, 0.08), (0.0, 0.0)],
        [(0.3, -0.2), (0.0, 0.14), (-0.3, 0.05), (0.0, 0.0)],
        [(0.3, -0.2), (0.0, 0.14), (-0.4, 0.05), (0.0, 0.0)],
    ]
    goals = [(0.3, -0.2), (0.3, -0.2), (-0.45, 0.05), (-0.45, 0.05)]
    terminated_at = [[False] * 4, [False] * 4, [True, False, False, False], [True, False, False, False]]
    for t in range(4):
        obs, reward, terminated, truncated, _ = venv.step(np.array(actions[t]))
        np.testing.assert_allclose(obs, positions[t], atol=1e-7)
        distances = [math.hypot(x - gx, y - gy) for (x, y), (gx, gy) in zip(positions[t], goals, strict=True)]
        np.testing.assert_allclose(reward, [-d for d in distances], rtol=1e-12, atol=1e-15)
        assert terminated.tolist() == terminated_at[t]
        assert truncated.tolist() == ([False, True, True, True] if t == 3 else [False] * 4)
    venv.step(np.full((4, 2), np.inf))  # past the horizon: ignored by the caller, must not raise
    venv.close()
    assert venv.closed


def test_navigation_terminates_only_strictly_within_the_tolerance():
    nav = family("navigation2d")
    goals = [{"goal_x": 0.009, "goal_y": -0.009}, {"goal_x": 0.011, "goal_y": 0.0}, {"goal_x": 0.0, "goal_y": 0.011}]
    venv = nav.vector_env(goals, episodes=1)
    venv.reset(seed=[0, 1, 2])
    _, reward, terminated, _, _ = venv.step(np.zeros((3, 2)))
    assert terminated.tolist() == [True, False, False]
    np.testing.assert_allclose(reward, [-math.hypot(0.009, 0.009), -0.011, -0.011])


def test_navigation_spaces_and_task_layout():
    nav = family("navigation2d")
    venv = nav.vector_env(NAV_GOALS, episodes=3)
    assert venv.num_envs == 6 and venv.single_observation_space.shape == (nav.obs_dim,)
    assert venv.observation_space.shape == (6, 2) and venv.action_space.shape == (6, 2)
    assert np.array_equal(venv.single_action_space.low, np.float32([-0.1, -0.1]))
    assert np.array_equal(venv.single_action_space.high, np.float32([0.1, 0.1]))
    venv.reset(seed=list(range(6)))
    _, reward, _, _, _ = venv.step(np.zeros((6, 2)))  # at the origin: reward = -|goal of task j // 3|
    expected = [-math.hypot(g["goal_x"], g["goal_y"]) for g in NAV_GOALS for _ in range(3)]
    np.testing.assert_allclose(reward, expected)


def test_navigation_is_reproducible_and_checks_the_seed_count():
    nav = family("navigation2d", horizon=20)
    actions = np.random.default_rng(0).normal(scale=0.2, size=(20, 4, 2))
    runs = []
    for _ in range(2):
        venv = nav.vector_env(NAV_GOALS, episodes=2)
        observed = [venv.reset(seed=[5, 6, 7, 8])[0]]
        for a in actions:
            obs, reward, *_ = venv.step(a)
            observed += [obs, reward]
        runs.append(observed)
    assert all(np.array_equal(a, b) for a, b in zip(*runs, strict=True))
    with pytest.raises(ValueError, match="one seed per sub-environment"):
        venv.reset(seed=[1, 2])
    assert venv.reset(seed=3)[0].shape == (4, 2)  # an int seeds sub-env j with 3 + j


# --- tasks: sampling, checking, parsing --------------------------------------------------------------------------


def test_registry_horizons_and_dimensions():
    assert list(ENVIRONMENTS) == ["navigation2d", "halfcheetah-vel", "halfcheetah-dir"]
    nav = family("navigation2d")
    assert (nav.horizon, nav.obs_dim, nav.act_dim) == (100, 2, 2) and family("navigation2d", 7).horizon == 7
    for name in ("halfcheetah-vel", "halfcheetah-dir"):
        cheetah = _family(name)
        assert (cheetah.horizon, cheetah.obs_dim, cheetah.act_dim) == (200, 17, 6)


@pytest.mark.parametrize("horizon", [0, -3, 2.5, True, "10"])
def test_a_bad_horizon_is_a_config_error(horizon):
    with pytest.raises(ConfigError, match=r"env\.horizon must be a whole number of steps >= 1"):
        family("navigation2d", horizon)


def test_an_unknown_environment_is_a_config_error():
    with pytest.raises(ConfigError) as error:
        family("x")
    assert str(error.value) == "env.name must be one of navigation2d, halfcheetah-vel, halfcheetah-dir, got 'x'"


def test_sample_tasks_is_seeded_and_in_range():
    nav, vel, direction = family("navigation2d"), _family("halfcheetah-vel"), _family("halfcheetah-dir")
    goals = np.array([[t["goal_x"], t["goal_y"]] for t in nav.sample_tasks(2000, np.random.default_rng(1))])
    assert np.abs(goals).max() <= 0.5 and np.abs(goals.mean(0)).max() < 0.03 and abs(np.corrcoef(goals.T)[0, 1]) < 0.1
    velocities = np.array([t["velocity"] for t in vel.sample_tasks(2000, np.random.default_rng(1))])
    assert velocities.min() >= 0 and velocities.max() <= 2 and abs(velocities.mean() - 1) < 0.05
    directions = np.array([t["direction"] for t in direction.sample_tasks(2000, np.random.default_rng(1))])
    assert set(directions.tolist()) == {-1.0, 1.0} and abs((directions > 0).mean() - 0.5) < 0.05
    for fam in (nav, vel, direction):
        assert fam.sample_tasks(5, np.random.default_rng(3)) == fam.sample_tasks(5, np.random.default_rng(3))
        assert fam.sample_tasks(5, np.random.default_rng(3)) != fam.sample_tasks(5, np.random.default_rng(4))
        assert fam.sample_tasks(0, np.random.default_rng(3)) == []
        assert all(fam.check_task(t) == t for t in fam.sample_tasks(20, np.random.default_rng(3)))
    with pytest.raises(ConfigError, match="number of tasks"):
        nav.sample_tasks(-1, np.random.default_rng(0))


@pytest.mark.parametrize(
    "name, task, message",
    [
        ("navigation2d", {"goal_x": 0.1}, "missing key 'goal_y'"),
        ("navigation2d", {"goal_x": 0.1, "goal_y": 0.1, "speed": 1}, "unknown key 'speed'"),
        ("navigation2d", {"goal_x": math.nan, "goal_y": 0.1}, r"goal_x must be a number in \[-0.5, 0.5\], got nan"),
        ("navigation2d", {"goal_x": 0.1, "goal_y": -0.51}, r"goal_y must be a number in \[-0.5, 0.5\], got -0.51"),
        ("navigation2d", {"goal_x": "0.1", "goal_y": 0.1}, r"goal_x must be a number in \[-0.5, 0.5\], got '0.1'"),
        ("navigation2d", {"goal_x": True, "goal_y": 0.1}, "goal_x must be a number"),
        ("navigation2d", [0.1, 0.2], "must be a mapping"),
        ("halfcheetah-vel", {"velocity": 2.5}, r"velocity must be a number in \[0, 2\], got 2.5"),
        ("halfcheetah-vel", {"velocity": -math.inf}, r"velocity must be a number in \[0, 2\]"),
        ("halfcheetah-vel", {"goal": 1.0}, "unknown key 'goal'"),
        ("halfcheetah-dir", {"direction": 0.5}, r"direction must be 1 \(forward\) or -1 \(backward\), got 0.5"),
        ("halfcheetah-dir", {"direction": 2}, r"direction must be a number in \[-1, 1\]"),
    ],
)
def test_a_bad_task_is_a_config_error_naming_the_key_and_range(name, task, message):
    with pytest.raises(ConfigError, match=message):
        _family(name).check_task(task)


def test_check_task_returns_a_float_copy_in_key_order():
    checked = family("navigation2d").check_task({"goal_y": np.float32(0.25), "goal_x": 0})
    assert checked == {"goal_x": 0.0, "goal_y": 0.25} and list(checked) == ["goal_x", "goal_y"]
    assert all(type(v) is float for v in checked.values())


@pytest.mark.parametrize(
    "name, text, task, label",
    [
        ("navigation2d", "goal=0.3,-0.2", {"goal_x": 0.3, "goal_y": -0.2}, "goal (0.30, -0.20)"),
        ("navigation2d", " goal = -0.5, 0.5 ", {"goal_x": -0.5, "goal_y": 0.5}, "goal (-0.50, 0.50)"),
        ("halfcheetah-vel", "velocity=1.5", {"velocity": 1.5}, "velocity 1.50"),
        ("halfcheetah-dir", "direction=backward", {"direction": -1.0}, "backward"),
        ("halfcheetah-dir", "direction=Forward", {"direction": 1.0}, "forward"),
        ("halfcheetah-dir", "direction=-1", {"direction": -1.0}, "backward"),
        ("halfcheetah-dir", "direction=1", {"direction": 1.0}, "forward"),
    ],
)
def test_parse_and_describe(name, text, task, label):
    fam = _family(name)
    assert fam.parse_task(text) == task and fam.describe(task) == label


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("navigation2d", "goal=0.3", r"must be written goal=X,Y"),
        ("navigation2d", "goal=a,b", r"must be written goal=X,Y"),
        ("navigation2d", "target=0.1,0.2", r"must be written goal=X,Y"),
        ("navigation2d", "", r"must be written goal=X,Y"),
        ("navigation2d", "goal=0.7,0", r"goal_x must be a number in \[-0.5, 0.5\]"),
        ("halfcheetah-vel", "velocity=fast", r"must be written velocity=V"),
        ("halfcheetah-vel", "1.5", r"must be written velocity=V"),
        ("halfcheetah-vel", "velocity=3", r"velocity must be a number in \[0, 2\]"),
        ("halfcheetah-dir", "direction=left", r"must be written direction=forward\|backward\|1\|-1"),
        ("halfcheetah-dir", "direction=0", r"must be written direction=forward\|backward\|1\|-1"),
    ],
)
def test_bad_task_text_is_a_config_error_showing_the_form(name, text, message):
    with pytest.raises(ConfigError, match=message):
        _family(name).parse_task(text)


def test_vector_env_checks_its_tasks_and_episode_count():
    nav = family("navigation2d")
    with pytest.raises(ConfigError, match="non-empty list of tasks"):
        nav.vector_env([], episodes=2)
    with pytest.raises(ConfigError, match="episodes per task"):
        nav.vector_env(NAV_GOALS, episodes=0)
    with pytest.raises(ConfigError, match="goal_x must be a number"):
        nav.vector_env([{"goal_x": 2.0, "goal_y": 0.0}], episodes=1)


# --- missing dependencies ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["mujoco", "gymnasium"])
def test_a_cheetah_without_mujoco_or_gymnasium_is_a_config_error(monkeypatch, missing):
    monkeypatch.setitem(sys.modules, missing, None)  # makes `import <missing>` fail
    with pytest.raises(ConfigError) as error:
        family("halfcheetah-vel")
    assert str(error.value) == "halfcheetah-vel needs gymnasium with MuJoCo: pip install 'polyskill[rl]'"


def test_the_registry_imports_without_gymnasium_and_mujoco(monkeypatch):
    monkeypatch.setitem(sys.modules, "gymnasium", None)
    monkeypatch.setitem(sys.modules, "mujoco", None)
    monkeypatch.setattr(polyskill.rl, "envs", polyskill.rl.envs)  # restored after the fresh import below
    for module in [m for m in sys.modules if m.startswith("polyskill.rl.envs")]:
        monkeypatch.delitem(sys.modules, module)
    envs = importlib.import_module("polyskill.rl.envs")
    assert list(envs.ENVIRONMENTS) == ["navigation2d", "halfcheetah-vel", "halfcheetah-dir"]
    with pytest.raises(ConfigError, match=r"halfcheetah-dir needs gymnasium with MuJoCo: pip install"):
        envs.family("halfcheetah-dir")
    with pytest.raises(ConfigError, match=r"navigation2d needs gymnasium: pip install 'polyskill\[rl\]'"):
        envs.family("navigation2d")


# --- the cheetahs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, task", [("halfcheetah-vel", {"velocity": 1.3}), ("halfcheetah-dir", {"direction": -1.0})]
)
def test_cheetah_reward_from_x_positions(cheetah, capfd, name, task):
    venv = family(name, horizon=5).vector_env([task], episodes=2)
    venv.reset(seed=[3, 4])
    sims = [env.unwrapped for env in venv.envs]
    dt = sims[0].model.opt.timestep * sims[0].frame_skip  # 0.01 s x 5 frames
    assert dt == pytest.approx(0.05)
    rng = np.random.default_rng(0)
    for _ in range(3):
        actions = rng.normal(scale=2.0, size=(2, 6))  # unclipped: most beyond [-1, 1]
        before = [float(sim.data.qpos[0]) for sim in sims]
        _, reward, terminated, truncated, _ = venv.step(actions)
        for j, sim in enumerate(sims):
            velocity = (float(sim.data.qpos[0]) - before[j]) / dt
            clipped = np.clip(actions[j], -1.0, 1.0)
            forward = -abs(velocity - 1.3) if name == "halfcheetah-vel" else -velocity
            assert reward[j] == pytest.approx(forward - 0.05 * float(np.sum(clipped**2)), rel=1e-9, abs=1e-12)
            np.testing.assert_array_equal(sim.data.ctrl, clipped)  # the simulation ran the clipped action
        assert not terminated.any() and not truncated.any()
    venv.close()
    assert "settotalmass" not in capfd.readouterr().out  # MuJoCo's model-compile warning goes to the log
    assert not (cheetah / "MUJOCO_LOG.TXT").exists()


def test_cheetah_vector_env_layout_truncation_and_seeding(cheetah):
    fam = family("halfcheetah-vel", horizon=3)
    tasks = [{"velocity": 0.5}, {"velocity": 1.5}, {"velocity": 1.0}]
    actions = np.random.default_rng(0).normal(size=(3, 6, 6))
    runs = []
    for seeds in ([1, 2, 3, 4, 5, 6], [1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]):
        venv = fam.vector_env(tasks, episodes=2)
        assert venv.num_envs == 6 and [env.task for env in venv.envs] == [tasks[j // 2] for j in range(6)]
        assert venv.single_observation_space.shape == (17,) and venv.single_action_space.shape == (6,)
        obs, _ = venv.reset(seed=seeds)
        observed = [obs]
        for t, a in enumerate(actions):
            obs, reward, terminated, truncated, _ = venv.step(a)
            assert obs.shape == (6, 17) and reward.shape == (6,) and not terminated.any()
            assert truncated.tolist() == [t == 2] * 6
            observed += [obs, reward]
        venv.close()
        runs.append(observed)
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1], strict=True))
    assert not np.array_equal(runs[0][0], runs[2][0])  # other seeds, other reset noise


def test_cheetah_rendering_without_opengl_is_a_config_error(cheetah, monkeypatch):
    fam = family("halfcheetah-vel", horizon=2)
    monkeypatch.setenv("MUJOCO_GL", "nonsense")
    with pytest.raises(ConfigError, match=r"rendering halfcheetah-vel needs OpenGL \(MUJOCO_GL=nonsense\)"):
        fam.render_episode({"velocity": 1.0}, lambda obs: np.zeros(6), seed=0)
    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.delenv("PYOPENGL_PLATFORM", raising=False)
    monkeypatch.setattr(ctypes.util, "find_library", lambda name: None)
    with pytest.raises(ConfigError, match=r"needs OpenGL \(MUJOCO_GL=egl or osmesa\): neither libEGL nor libOSMesa"):
        fam.render_episode({"velocity": 1.0}, lambda obs: np.zeros(6), seed=0)


def test_cheetah_renders_an_episode_where_opengl_is_installed(cheetah, monkeypatch):
    for name in ("MUJOCO_GL", "PYOPENGL_PLATFORM"):  # unset for the test, whatever the render sets is undone after
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    fam = family("halfcheetah-dir", horizon=3)
    try:
        frames = fam.render_episode({"direction": 1.0}, lambda obs: np.ones(6), seed=0)
    except ConfigError as e:
        pytest.skip(f"no OpenGL here: {e}")
    import os

    assert os.environ["MUJOCO_GL"] in ("egl", "osmesa")
    assert len(frames) == 4 and all(f.shape == (256, 256, 3) and f.dtype == np.uint8 for f in frames)
    assert frames[0].std() > 10 and not np.array_equal(frames[0], frames[-1])


# --- rendering navigation and writing videos ---------------------------------------------------------------------


def test_navigation_frames_make_a_gif_read_back_by_pillow(tmp_path):
    nav = family("navigation2d", horizon=6)
    frames = nav.render_episode({"goal_x": 0.4, "goal_y": 0.4}, lambda obs: np.array([0.05, 0.05]), seed=0)
    assert len(frames) == 7 and all(f.shape == (256, 256, 3) and f.dtype == np.uint8 for f in frames)
    column, row = (round(v) for v in to_pixel(0.4, 0.4))
    assert frames[0][row, column].tolist() == [0, 170, 0]  # the goal, green
    column, row = (round(v) for v in to_pixel(0.3, 0.3))
    assert frames[-1][row, column].tolist() == [220, 30, 30]  # the point after 6 steps of 0.05, red
    path = write_video(frames, tmp_path / "videos" / "nav.gif", fps=10)
    assert path == tmp_path / "videos" / "nav.gif" and [p.name for p in path.parent.iterdir()] == ["nav.gif"]
    with Image.open(path) as gif:
        assert gif.n_frames == 7 and gif.size == (256, 256) and gif.info["duration"] == 100
        assert np.abs(np.asarray(gif.convert("RGB"), dtype=int) - frames[0]).mean() < 2
    reached = nav.render_episode({"goal_x": 0.1, "goal_y": 0.1}, lambda obs: np.array([0.1, 0.1]) - obs, seed=0)
    assert len(reached) == 2  # the start and the step that reached the goal


def test_write_video_refuses_other_suffixes_bad_fps_and_unwritable_folders(tmp_path):
    frames = [np.zeros((8, 8, 3), np.uint8)]
    with pytest.raises(ConfigError, match=r"must be a \.gif or an \.mp4"):
        write_video(frames, tmp_path / "a.avi")
    with pytest.raises(ConfigError, match="fps must be a whole number >= 1"):
        write_video(frames, tmp_path / "a.gif", fps=0)
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(ConfigError, match="cannot write the video"):
        write_video(frames, tmp_path / "file" / "a.gif")
    with pytest.raises(ValueError, match="frame 1 must be uint8"):
        write_video([frames[0], np.zeros((8, 8, 3))], tmp_path / "a.gif")


def test_a_failed_write_leaves_the_old_video_and_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "nav.gif"
    target.write_bytes(b"old")

    def broken_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:
            f.write(b"half a gif")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(ConfigError, match="No space left on device"):
        write_video([np.zeros((8, 8, 3), np.uint8)] * 2, target)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["nav.gif"]


def test_mp4_without_imageio_ffmpeg_is_a_config_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    with pytest.raises(ConfigError) as error:
        write_video([np.zeros((16, 16, 3), np.uint8)], tmp_path / "a.mp4")
    assert str(error.value) == "writing .mp4 needs imageio-ffmpeg: pip install imageio-ffmpeg, or write a .gif"
    assert list(tmp_path.iterdir()) == []
