"""Video frames as project images: sampled evenly or spread out in feature space."""
import re

import cv2
import numpy as np
import pytest

from desktop.engine.errors import ImageReadError
from desktop.engine.images.video import read_frame, read_pixels, video_info
from desktop.engine.keypoints.video_frames import add_video, kmeans_frames, uniform_frames
from desktop.engine.project.skeleton import Skeleton
from desktop.engine.project.store import Project


def write_video(path, colours, size=(64, 48)):
    """An MJPG AVI (writes headless everywhere): one frame per colour, with a frame number drawn
    in, so frames can be told apart."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, size)
    for i, colour in enumerate(colours):
        frame = np.zeros((size[1], size[0], 3), np.uint8)
        frame[:] = colour[::-1]  # BGR
        cv2.rectangle(frame, (2 + 2 * i, 2), (6 + 2 * i, 8), (255, 255, 255), -1)
        writer.write(frame)
    writer.release()
    return path


def test_frames_are_images_that_refer_to_video_and_frame(tmp_path):
    video = write_video(tmp_path / "clip.avi", [(10 * i, 100, 200) for i in range(20)])
    assert video_info(video).frames == 20 and uniform_frames(20, 4) == [2, 7, 12, 17]
    with Project.create(tmp_path / "p", task="keypoints") as project:
        project.set_skeleton(Skeleton(("nose",)))
        ids = add_video(project, video, 4)
        infos = [project.image(i) for i in ids]
        assert [(i.video, i.frame) for i in infos] == [(video.resolve(), f) for f in (2, 7, 12, 17)]
        assert add_video(project, video, 4) == ids  # adding again adds nothing
        pixels = read_pixels(infos[1].source, infos[1].frame)
        assert pixels.shape == (48, 64, 3) and abs(int(pixels[30, 30, 0]) - 70) < 8  # frame 7's red
        assert project.image_problem(infos[0]) is None
        project.set_keypoint_labels([(ids[1], 0, 5.0, 6.0, "visible")])  # a label on (video, frame 7)
    video.unlink()
    with Project.open(tmp_path / "p") as project:
        assert "moved or deleted" in project.image_problem(project.images()[0])


def test_kmeans_takes_one_frame_of_each_scene(tmp_path):
    scenes = [(240, 20, 20)] * 10 + [(20, 240, 20)] * 10 + [(20, 20, 240)] * 10
    video = write_video(tmp_path / "scenes.avi", scenes)
    chosen = kmeans_frames(video, 3, candidates=30)
    assert sorted(i // 10 for i in chosen) == [0, 1, 2]


def test_bad_videos_are_refused_with_the_reason(tmp_path):
    broken = tmp_path / "broken.avi"
    broken.write_bytes(b"RIFF but not really a video")
    with Project.create(tmp_path / "p", task="keypoints") as project:
        with pytest.raises(ImageReadError, match="cannot decode"):
            add_video(project, broken, 3)
        with pytest.raises(ImageReadError, match="videos are read from"):
            add_video(project, tmp_path / "notes.txt", 3)
        assert project.images() == []


def test_a_video_damaged_in_the_middle_is_refused_naming_the_frames(tmp_path):
    """3000 zero bytes in the middle of a 100-frame MJPG AVI. Seeking into the damaged stretch
    stops short, and OpenCV quietly gives an earlier frame; reading frame by frame stops there."""
    video = write_video(tmp_path / "clip.avi", [(2 * i, 100, 200) for i in range(100)])
    data = bytearray(video.read_bytes())
    data[len(data) // 2:len(data) // 2 + 3000] = bytes(3000)
    video.write_bytes(bytes(data))
    assert video_info(video).frames == 100  # the header is intact
    with Project.create(tmp_path / "p", task="keypoints") as project:
        project.set_skeleton(Skeleton(("nose",)))
        with pytest.raises(ImageReadError) as refused:
            add_video(project, video, 10)
        named = re.fullmatch(r"2 of the 10 frames sampled cannot be decoded \(frames (\d+) and (\d+)\): "
                             r"the video is damaged .*\. Nothing was added; re-encode it .*",
                             refused.value.reason)
        assert named and all(30 < int(frame) < 70 for frame in named.groups())
        with pytest.raises(ImageReadError, match=r"\d\d of the 100 frames sampled cannot be decoded "
                                                 r"\(frames \d+, \d+, .* and \d+ more\)"):
            add_video(project, video, 3, method="kmeans")  # refused before any frame is encoded
        assert project.images() == []
    with pytest.raises(ImageReadError, match=f"frame {named[1]} cannot be read"):
        read_frame(video, int(named[1]))


def test_exported_frames_are_real_images_that_import_again(tmp_path):
    """A video project's CSV names PNG frames in DeepLabCut's labeled-data layout, so the file
    re-imports (here, or in DeepLabCut) with the same pixels and labels."""
    from desktop.engine.images.pictures import read_image
    from desktop.engine.keypoints.formats import export_project, import_table, read_table

    video = write_video(tmp_path / "clip.avi", [(10 * i, 100, 200) for i in range(20)])
    with Project.create(tmp_path / "p", task="keypoints") as project:
        project.set_skeleton(Skeleton(("nose", "tail")))
        ids = add_video(project, video, 2)  # frames 5 and 15
        project.set_keypoint_labels([(ids[0], 0, 5.5, 6.25, "visible"), (ids[1], 1, 0.0, 0.0, "absent")])
        info = project.image(ids[1])
        frame = read_pixels(info.source, info.frame)
        out = tmp_path / "export" / "CollectedData.csv"
        out.parent.mkdir()
        export_project(project, out)
    table = read_table(out)
    assert table.images == ["labeled-data/clip/img00005.png", "labeled-data/clip/img00015.png"]
    assert np.array_equal(read_image(out.parent / table.images[1]), frame)  # PNG: lossless
    with Project.create(tmp_path / "q", task="keypoints") as again:
        new_ids = import_table(again, table, out.parent, out)
        xy, _ = again.keypoint_arrays(new_ids[0])
        assert xy[0] == pytest.approx([5.5, 6.25]) and np.isnan(xy[1]).all()
        assert again.image(new_ids[1]).path == (out.parent / table.images[1]).resolve()


def test_export_with_a_video_gone_uses_earlier_frames_or_is_refused(tmp_path):
    from desktop.engine.keypoints.formats import export_project, read_table

    video = write_video(tmp_path / "clip.avi", [(10 * i, 100, 200) for i in range(10)])
    with Project.create(tmp_path / "p", task="keypoints") as project:
        project.set_skeleton(Skeleton(("nose",)))
        add_video(project, video, 2)
        export_project(project, tmp_path / "first" / "labels.csv", all_frames=True)
        video.unlink()
        export_project(project, tmp_path / "first" / "labels.csv", all_frames=True)  # the frames exported before serve
        assert read_table(tmp_path / "first" / "labels.csv").images == ["labeled-data/clip/img00002.png",
                                                                         "labeled-data/clip/img00007.png"]
        with pytest.raises(ImageReadError, match="clip.avi"):
            export_project(project, tmp_path / "second" / "labels.csv", all_frames=True)
    assert not (tmp_path / "second" / "labels.csv").exists()


def test_export_where_frames_cannot_be_written_is_refused_in_words(tmp_path):
    from desktop.engine.errors import ProjectError
    from desktop.engine.keypoints.formats import export_project_file

    video = write_video(tmp_path / "clip.avi", [(10 * i, 100, 200) for i in range(10)])
    with Project.create(tmp_path / "p", task="keypoints") as project:
        project.set_skeleton(Skeleton(("nose",)))
        add_video(project, video, 2)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "labeled-data").write_text("a file where the frames' folder goes")
    with pytest.raises(ProjectError, match="Cannot write beside .*labels.csv"):
        export_project_file(tmp_path / "p", tmp_path / "out" / "labels.csv", all_frames=True)
    assert not (tmp_path / "out" / "labels.csv").exists()


def test_export_keeps_videos_of_one_name_apart_and_names_outside_images_absolutely(tmp_path):
    from desktop.engine.keypoints.formats import export_project, read_table

    a = write_video((tmp_path / "a").mkdir() or tmp_path / "a" / "cam.avi", [(200, 0, 0)] * 4)
    b = write_video((tmp_path / "b").mkdir() or tmp_path / "b" / "cam.avi", [(0, 0, 200)] * 4)
    picture = tmp_path / "elsewhere" / "still.png"
    picture.parent.mkdir()
    cv2.imwrite(str(picture), np.zeros((48, 64, 3), np.uint8))
    out = tmp_path / "out" / "labels.csv"
    with Project.create(tmp_path / "p", task="keypoints") as project:
        project.set_skeleton(Skeleton(("nose",)))
        add_video(project, a, 1)
        add_video(project, b, 1)
        project.add_image(picture, 64, 48)
        export_project(project, out, all_frames=True)
    names = read_table(out).images
    assert names == ["labeled-data/cam/img00002.png", "labeled-data/cam-2/img00002.png", str(picture.resolve())]
    red, blue = (read_pixels_of(out.parent / n) for n in names[:2])
    assert red[..., 0].mean() > 150 and blue[..., 2].mean() > 150  # each video's own frame


def read_pixels_of(path):
    from desktop.engine.images.pictures import read_image

    return read_image(path)
