from tastebud.cli import main

main()
