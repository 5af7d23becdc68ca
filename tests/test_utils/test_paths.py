"""utils.paths: the natural order of numbered files and the image-extension helpers."""
from mmbloodcell.utils.paths import IMAGE_EXTENSIONS, natural_key, strip_image_ext


def test_natural_key_orders_numbers_by_value():
    names = ['10.bmp', '2.bmp', '1.bmp', 'UID_1_10_1_all.bmp', 'UID_1_9_1_all.bmp', 'B.png',
             'a.png']
    assert sorted(names, key=natural_key) == [
        '1.bmp', '2.bmp', '10.bmp', 'a.png', 'B.png', 'UID_1_9_1_all.bmp', 'UID_1_10_1_all.bmp']
    assert sorted(['x', 'x1', '1'], key=natural_key) == ['1', 'x', 'x1']  # mixed: no TypeError


def test_strip_image_ext():
    assert strip_image_ext('UID_1_3_1_all.bmp') == 'UID_1_3_1_all'
    assert strip_image_ext('12.PNG') == '12' and strip_image_ext('notes.txt') == 'notes.txt'
    assert '.bmp' in IMAGE_EXTENSIONS and all(e == e.lower() for e in IMAGE_EXTENSIONS)
